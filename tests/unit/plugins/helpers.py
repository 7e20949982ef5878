"""What the built-in task type tests share: a context and the submission-time validator."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema

from plugins.tasktypes import ContainerSpec, TaskContext, TaskType

CTX = TaskContext(job_id="job-1", task_id="task-1", task_name="t", attempt=1)


def errors(task_type: TaskType, payload: Any) -> list[str]:
    """The schema's complaints about ``payload``, as the API would list them."""
    validator = jsonschema.Draft202012Validator(task_type.payload_schema)
    return [e.message for e in validator.iter_errors(payload)]


def build(task_type: TaskType, payload: Mapping[str, Any], ctx: TaskContext = CTX) -> ContainerSpec:
    """Build a spec the way the runner does: only for a payload the schema accepted."""
    assert errors(task_type, payload) == [], errors(task_type, payload)
    return task_type.build_spec(payload, ctx)
