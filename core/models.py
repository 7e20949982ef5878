"""The job model: statuses and the small value types shared by the API, runner and notifier.

The statuses are defined in ``wire.statuses``, beside the resource models the client shares;
they are re-exported here so the server's modules keep one import for the job model.
"""

from __future__ import annotations

# The plugin API defines it (plugins/ depends on nothing in core/); core code names it here.
from plugins.tasktypes import JSON
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
    "PRIORITY_BOUND",
    "TERMINAL_JOB",
    "TERMINAL_TASK",
    "AttemptStatus",
    "FailureKind",
    "JobStatus",
    "TaskStatus",
]

# A task's priority lies in [-PRIORITY_BOUND, PRIORITY_BOUND]: the submission schema says so,
# and within it the queue's scores (core/queue.py) stay exact integers in a double.
PRIORITY_BOUND = 400
