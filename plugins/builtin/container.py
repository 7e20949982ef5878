"""The ``container`` task type: an operator-allowed image and an argv, nothing else."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class ImageReference:
    """An image reference (or an allow-list pattern) cut into the parts Docker reads.

    ``[registry/]path[:tag][@digest]``: the first ``/``-separated component is the
    registry when it has a ``.`` or a ``:`` or is ``localhost`` (Docker's own rule), split
    into host and port; ``path`` is the remaining components; the tag follows the last
    component's ``:``, the digest the ``@``.
    """

    registry: tuple[str, ...]
    path: tuple[str, ...]
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, text: str) -> ImageReference:
        name, at, digest = text.partition("@")
        components = name.split("/")
        registry: tuple[str, ...] = ()
        first = components[0]
        if len(components) > 1 and ("." in first or ":" in first or first == "localhost"):
            registry = tuple(first.split(":", 1))
            components = components[1:]
        last, colon, tag = components[-1].partition(":")
        return cls(
            registry=registry,
            path=(*components[:-1], last),
            tag=tag if colon else None,
            digest=digest if at else None,
        )

    def parts(self) -> tuple[tuple[str, ...], ...]:
        """The parts, grouped so that an absent part is an empty group."""
        return (
            self.registry,
            self.path,
            () if self.tag is None else (self.tag,),
            () if self.digest is None else (self.digest,),
        )


def image_allowed(image: str, allowed: Sequence[str]) -> bool:
    """Whether ``image`` matches one of the operator's patterns (``alpine:*``, exact names).

    A pattern is an image reference whose parts may hold shell-style wildcards (``*``,
    ``?``, ``[...]``), matched part by part, case-sensitively, over the reference as
    written (before the runner qualifies it with a registry):

    - a wildcard stays inside its part: ``*`` never crosses ``/``, ``:`` or ``@``, so
      ``alpine:*`` admits ``alpine:3.19`` but never ``alpine:5000/evil/x:1`` (the registry
      ``alpine:5000``), and ``team/*:1`` admits ``team/tool:1`` but not ``team/a/b:1``;
    - both sides have the same parts: a pattern without a registry admits only
      references without one (``alpine:*`` refuses ``evil.io/alpine:3``), one without a
      tag only untagged references (``alpine`` and ``alpine:latest`` are different
      references), and one without a digest only references without one, since a digest
      overrides the tag (allow them with ``alpine@sha256:*``).
    """
    wanted = ImageReference.parse(image).parts()
    for pattern in allowed:
        given = ImageReference.parse(pattern).parts()
        if all(
            len(part) == len(glob) and all(map(fnmatchcase, part, glob))
            for part, glob in zip(wanted, given, strict=True)
        ):
            return True
    return False


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
