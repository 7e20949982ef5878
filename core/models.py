"""The job model: statuses and the small value types shared by the API, runner and notifier."""

from __future__ import annotations

from enum import StrEnum

# The plugin API defines it (plugins/ depends on nothing in core/); core code names it here.
from plugins.tasktypes import JSON

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


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_JOB


class TaskStatus(StrEnum):
    PENDING = "pending"  # waiting on dependencies
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_TASK


class AttemptStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    LOST = "lost"  # the runner lost its lease; another attempt follows
    CANCELLED = "cancelled"


class FailureKind(StrEnum):
    """Why an attempt did not succeed: the task's own fault, or the platform's."""

    TASK = "task"  # non-zero exit, bad output
    # The task type refused the payload when the runner built the container: the same
    # payload is refused again, so it is never retried.
    PAYLOAD = "payload"
    TIMEOUT = "timeout"
    INFRASTRUCTURE = "infrastructure"  # engine error, lost lease, runner shutdown


TERMINAL_JOB = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
TERMINAL_TASK = frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED})
