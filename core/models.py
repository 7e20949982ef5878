"""The job model: statuses and the small value types shared by the API, runner and notifier.

The statuses are defined in ``wire.statuses``, beside the resource models the client shares;
they are re-exported here so the server's modules keep one import for the job model.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from wire.statuses import (
    TERMINAL_JOB,
    TERMINAL_TASK,
    AttemptStatus,
    FailureKind,
    JobStatus,
    TaskStatus,
)

__all__ = [
    "JSON",
    "TERMINAL_JOB",
    "TERMINAL_TASK",
    "AttemptStatus",
    "FailureKind",
    "JobStatus",
    "TaskStatus",
]

JSON: TypeAlias = Any  # a value that survived json.loads
