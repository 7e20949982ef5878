"""The ``shell`` task type: a POSIX sh script, run by dash in a minimal Debian image."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from plugins.builtin.schemas import ENV_SCHEMA, MAX_SOURCE_CHARS, env_of, payload_schema, utf8
from plugins.hookspecs import hookimpl
from plugins.tasktypes import HOMERUN_DIR, ContainerSpec, TaskContext, TaskType

NAME: Final = "shell"
IMAGE: Final = "homerun/task-shell:0.1.0"
# The script travels as a file, not as ``sh -c``: argv is visible in ``docker inspect`` and
# `ps`, and bounded by the kernel's argument size.
SCRIPT_FILE: Final = f"{HOMERUN_DIR}/task.sh"

PAYLOAD_SCHEMA: Final = payload_schema(
    "shell task payload",
    {
        "script": {
            "type": "string",
            "description": "A POSIX sh script. Exit status 0 is success.",
            "minLength": 1,
            "maxLength": MAX_SOURCE_CHARS,
        },
        "env": ENV_SCHEMA,
    },
    required=["script"],
)


def build_spec(payload: Mapping[str, Any], ctx: TaskContext) -> ContainerSpec:
    return ContainerSpec(
        image=IMAGE,
        argv=["/bin/sh", SCRIPT_FILE],
        env=env_of(payload),
        files={SCRIPT_FILE: utf8(payload["script"], ("script",))},
        workdir=HOMERUN_DIR,
    )


TASK_TYPE: Final = TaskType(
    name=NAME,
    description=(
        "Run a POSIX sh script (dash and coreutils, no network). The payload is readable at"
        " /homerun/input.json; JSON written to /homerun/output.json becomes the output."
    ),
    payload_schema=PAYLOAD_SCHEMA,
    build_spec=build_spec,
)


@hookimpl
def register_task_types(register: Callable[[TaskType], None]) -> None:
    register(TASK_TYPE)
