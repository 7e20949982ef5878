"""The task types a deployment accepts (``GET /v1/task-types``)."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["TaskTypeInfo", "TaskTypeList"]


class TaskTypeInfo(msgspec.Struct, kw_only=True):
    """A registered task type; ``payload_schema`` is its plugin's JSON Schema."""

    name: str
    description: str
    payload_schema: dict[str, Any]


class TaskTypeList(msgspec.Struct, kw_only=True):
    task_types: list[TaskTypeInfo]
