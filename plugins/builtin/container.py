"""The ``container`` task type: an operator-allowed image and an argv, nothing else."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any, Final

from plugins.builtin.schemas import (
    ENV_SCHEMA,
    MAX_ARG_CHARS,
    MAX_ARGS,
    NO_NUL_PATTERN,
    env_of,
    payload_schema,
    utf8,
)
from plugins.hookspecs import hookimpl
from plugins.tasktypes import HOMERUN_DIR, ContainerSpec, PayloadError, TaskContext, TaskType

NAME: Final = "container"
# A Docker image reference: [registry[:port]/]path[:tag][@digest], lower-case path.
IMAGE_PATTERN: Final = (
    r"^([a-z0-9.-]+:[0-9]{1,5}/)?[a-z0-9][a-z0-9._/-]*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
)

PAYLOAD_SCHEMA: Final = payload_schema(
    "container task payload",
    {
        "image": {
            "type": "string",
            "description": "An image the operator allows (HOMERUN_ALLOWED_IMAGES).",
            "minLength": 1,
            "maxLength": 255,
            "pattern": IMAGE_PATTERN,
        },
        "argv": {
            "type": "array",
            "description": "The command and its arguments; the image's entrypoint is ignored.",
            "minItems": 1,
            "maxItems": MAX_ARGS,
            "items": {"type": "string", "maxLength": MAX_ARG_CHARS, "pattern": NO_NUL_PATTERN},
            "prefixItems": [{"minLength": 1}],
        },
        "env": ENV_SCHEMA,
    },
    required=["image", "argv"],
)


def image_allowed(image: str, allowed: Sequence[str]) -> bool:
    """Whether ``image`` matches one of the operator's patterns (``alpine:*``, exact names).

    Case-sensitive shell-style globs over the reference exactly as written: ``alpine`` and
    ``alpine:latest`` are different references, so an operator lists what they mean.
    """
    return any(fnmatchcase(image, pattern) for pattern in allowed)


def build_spec(payload: Mapping[str, Any], ctx: TaskContext) -> ContainerSpec:
    image: str = payload["image"]
    if not image_allowed(image, ctx.allowed_images):
        allowed = ", ".join(ctx.allowed_images) or "none"
        raise PayloadError(
            f"image {image!r} is not allowed on this homerun (allowed: {allowed})", ("image",)
        )
    argv = list(payload["argv"])
    for index, arg in enumerate(argv):
        utf8(arg, ("argv", index))
    return ContainerSpec(image=image, argv=argv, env=env_of(payload), workdir=HOMERUN_DIR)


TASK_TYPE: Final = TaskType(
    name=NAME,
    description=(
        "Run argv in an image the operator allows, with the same lock-down as every task"
        " (no network, read-only root, non-root user)."
    ),
    payload_schema=PAYLOAD_SCHEMA,
    build_spec=build_spec,
)


@hookimpl
def register_task_types(register: Callable[[TaskType], None]) -> None:
    register(TASK_TYPE)
