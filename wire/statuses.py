"""The lifecycle statuses of jobs, tasks and attempts, as the API spells them.

They live here, beside the resource models, because the client decodes them as much as the
server stores them; ``core.models`` re-exports them for the server's own modules.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "TERMINAL_JOB",
    "TERMINAL_TASK",
    "AttemptStatus",
    "FailureKind",
    "JobStatus",
    "TaskStatus",
]


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
    # The output is JSON Postgres cannot store (a NUL, a lone surrogate, a number out of
    # range): the same command writes it again, so it is never retried.
    OUTPUT = "output"
    # What the task left under /homerun/artifacts is over the deployment's bounds (files,
    # bytes) or holds what is never collected (a symlink, a FIFO, a device, a hard link
    # out of the tree): the same command leaves it again, so it is never retried.
    ARTIFACTS = "artifacts"
    INFRASTRUCTURE = "infrastructure"  # engine error, lost lease, runner shutdown
    # A map task's list is not a list, or longer than the deployment allows: the map task
    # fails before any instance runs (core/transitions/fanout.py).
    MAP = "map"


TERMINAL_JOB = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
TERMINAL_TASK = frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED})
