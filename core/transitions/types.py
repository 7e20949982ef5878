"""The values transitions take and return."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.models import JSON, AttemptStatus, FailureKind, JobStatus

# Infrastructure failures (lost lease, engine error) are not the task's fault and do not
# use up max_attempts, but a task that keeps killing its runner must still end.
MAX_INFRASTRUCTURE_RETRIES = 10


class IdempotencyConflict(Exception):
    """The idempotency key was used before with a different request body."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"idempotency key already used for job {job_id} with another body")
        self.job_id = job_id


@dataclass(frozen=True)
class Reused:
    """A task of the original job that a re-run takes over as succeeded, with its output."""

    task_id: str
    output: Any


@dataclass(frozen=True)
class MapSpec:
    """A map task's fan-out: over an upstream task's output list, or over given items."""

    over: str | None = None  # the upstream task whose output is the list
    items: Sequence[JSON] | None = None  # ``over_items``, given in the body
    max_parallel: int | None = None  # instances queued or running at once; None: no cap
    max_items: int | None = None  # the deployment's bound when the job was accepted


@dataclass(frozen=True)
class NewTask:
    name: str
    type: str
    payload: Mapping[str, Any]
    depends_on: Sequence[str] = ()
    timeout_s: int | None = None
    max_attempts: int = 3
    priority: int = 0
    reused: Reused | None = None  # not run: succeeded already, in the job re-run
    # Labels a runner must all have to take the task (core/runnergroups.py).
    runs_on: Sequence[str] = ()
    # Container size; None: the task type's own (its ContainerSpec's limits).
    cpus: float | None = None
    memory_mb: int | None = None
    # "none" (the default: loopback only) or "egress" (through the egress proxy, where the
    # operator allows it: core/egress.py).
    network: str = "none"
    secrets: Sequence[str] = ()  # names of the token's secrets it reads
    # Small input files (name -> base64), placed read-only under /homerun/files.
    files: Mapping[str, str] = field(default_factory=dict)
    map: MapSpec | None = None  # a map task: one instance per item (core.transitions.fanout)


@dataclass(frozen=True)
class NewJob:
    tasks: Sequence[NewTask]
    name: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    callback_url: str | None = None
    rerun_of: str | None = None
    # A schedule's job: the schedule and the tick (its cron time) the job is for.
    schedule_id: str | None = None
    scheduled_for: datetime | None = None
    # Never deleted by retention (notifier/retention.py).
    keep: bool = False


@dataclass(frozen=True)
class ReadyTask:
    """A task the queue must be told about once the transaction committed."""

    task_id: str
    token_id: str  # whose line it waits in: claims rotate between tokens
    priority: int
    not_before: datetime | None = None
    # Which runners may take it: the queue keeps a line per token and label set.
    runs_on: Sequence[str] = ()


@dataclass(frozen=True)
class Created:
    job_id: str
    created: bool  # False when an idempotent replay returned an existing job
    ready: list[ReadyTask]


@dataclass(frozen=True)
class Claim:
    job_id: str
    # The job's token: the runner runs the task as that token's uid (runners/identity.py).
    token_id: str
    task_id: str
    task_name: str
    task_type: str
    payload: dict[str, Any]
    attempt: int
    timeout_s: int | None
    lease_expires_at: datetime
    inputs: dict[str, JSON]
    # Asked for at submission; None: the task type's own limits.
    cpus: float | None = None
    memory_mb: int | None = None
    network: str = "none"  # what the submission asked for (NewTask.network)
    secrets: tuple[str, ...] = ()  # the runner opens them just before the run
    files: dict[str, str] = field(default_factory=dict)  # submitted: name -> base64


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended, as the runner saw it."""

    status: AttemptStatus  # SUCCEEDED, FAILED or CANCELLED
    exit_code: int | None = None
    stdout: str = ""
    stdout_truncated: bool = False
    stderr: str = ""
    stderr_truncated: bool = False
    output: JSON = None
    error: str | None = None
    failure_kind: FailureKind | None = None


@dataclass
class Aftermath:
    """What a committed transition asks of the caller."""

    applied: bool = True
    ready: list[ReadyTask] = field(default_factory=list)
    cancel_running: list[tuple[str, int]] = field(default_factory=list)  # (task_id, attempt)
    job_status: JobStatus | None = None


@dataclass(frozen=True)
class Heartbeat:
    alive: bool  # False: the lease is lost or the attempt was superseded; stop and clean up
    cancel_requested: bool
