"""A throwaway task type the API tests register next to the built-in ones."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from plugins.hookspecs import hookimpl
from plugins.tasktypes import ContainerSpec, PayloadError, TaskContext, TaskType

REFUSED = "refuse me"


def _build(payload: Mapping[str, Any], ctx: TaskContext) -> ContainerSpec:
    if payload["message"] == REFUSED:
        raise PayloadError("the echo type refuses this message", ("message",))
    return ContainerSpec(image="busybox", argv=["echo", payload["message"]])


ECHO = TaskType(
    name="echo",
    description="Print a message (test plugin).",
    payload_schema={
        "type": "object",
        "properties": {
            "message": {"type": "string", "maxLength": 100},
            "times": {"type": "integer", "minimum": 1, "maximum": 5},
        },
        "required": ["message"],
        "additionalProperties": False,
    },
    build_spec=_build,
)


class EchoPlugin:
    @hookimpl
    def register_task_types(self, register: Callable[[TaskType], None]) -> None:
        register(ECHO)
