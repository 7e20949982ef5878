"""Jobs, their tasks, and each task's attempts and results, as the API shows them."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from wire.codec import AnyJson, Timestamp, Uuid
from wire.fanout import MapState
from wire.statuses import AttemptStatus, FailureKind, JobStatus, TaskStatus

__all__ = [
    "JOB_VIEW_OUTPUT_BYTES",
    "Attempt",
    "AttemptDetail",
    "Job",
    "JobPage",
    "JobSummary",
    "Resources",
    "Result",
    "Task",
    "TaskDetail",
]

# The job view carries each task's output only up to this size, so that one answer never
# grows with the outputs of many tasks (a job of 100 tasks of 1 MB each would be 100 MB).
# A larger output is fetched with its task.
JOB_VIEW_OUTPUT_BYTES = 4096


class Resources(msgspec.Struct, kw_only=True):
    """A task's container size as submitted; null: its task type's own."""

    cpus: float | None
    memory_mb: int | None


class Task(msgspec.Struct, kw_only=True):
    """A task of a job, without its payload and attempts (see TaskDetail)."""

    id: Uuid
    job_id: Uuid
    name: str
    type: str
    status: TaskStatus
    depends_on: list[str]
    priority: int
    timeout_s: int | None
    max_attempts: int
    attempt_count: Annotated[int, msgspec.Meta(description="Number of the latest attempt.")]
    retry_at: Annotated[
        Timestamp | None, msgspec.Meta(description="When a waiting retry becomes due.")
    ]
    output: Annotated[
        AnyJson,
        msgspec.Meta(
            description="The task's output. In a job's view only up to"
            f" {JOB_VIEW_OUTPUT_BYTES} bytes (see output_bytes): GET the task for a larger one."
        ),
    ]
    output_bytes: Annotated[
        int | None,
        msgspec.Meta(description="Size of the output as JSON text; null when there is none."),
    ]
    error: str | None
    reused_from: Annotated[
        Uuid | None,
        msgspec.Meta(
            description="In a re-run from failed: the original's task whose success (and"
            " output) this task took over instead of running."
        ),
    ]
    created_at: Timestamp
    updated_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    runs_on: Annotated[
        list[str],
        msgspec.Meta(description="Labels a runner must all have to take the task."),
    ]
    resources: Resources
    waiting_for: Annotated[
        str | None,
        msgspec.Meta(
            description='While queued, what the task waits for, e.g. "waiting for a runner'
            ' with labels [bigdisk]" (a group that is down leaves it queued).'
        ),
    ]
    map: Annotated[
        MapState | None,
        msgspec.Meta(description="A map task's fan-out and its instances' counts."),
    ] = None
    map_of: Annotated[
        str | None,
        msgspec.Meta(description="An instance: the name of its map task (see map_index)."),
    ] = None
    map_index: Annotated[int | None, msgspec.Meta(description="An instance: its item's index.")] = (
        None
    )


class Result(msgspec.Struct, kw_only=True):
    """What one attempt left behind."""

    exit_code: int | None
    stdout: str
    stdout_truncated: bool
    stderr: str
    stderr_truncated: bool
    output: AnyJson
    error: str | None
    created_at: Timestamp


class Attempt(msgspec.Struct, kw_only=True):
    """One run of a task in a container, by one runner."""

    number: Annotated[int, msgspec.Meta(ge=1)]
    runner_id: str
    status: AttemptStatus
    container_id: str | None
    lease_expires_at: Timestamp
    started_at: Timestamp
    finished_at: Timestamp | None
    exit_code: int | None
    failure_kind: FailureKind | None
    error: str | None


class AttemptDetail(Attempt, kw_only=True):
    """An attempt with its result."""

    result: Result | None


class TaskDetail(Task, kw_only=True):
    """A task with its payload and whole output, every attempt, and the latest result.

    Earlier attempts' results are fetched one at a time (AttemptDetail), so the answer is
    bounded by one result, whatever the number of attempts.
    """

    payload: dict[str, Any]
    attempts: list[Attempt]
    result: Annotated[Result | None, msgspec.Meta(description="The latest attempt's result.")]


class JobSummary(msgspec.Struct, kw_only=True):
    """A job without its tasks, as listed."""

    id: Uuid
    name: str | None
    status: JobStatus
    labels: dict[str, str]
    callback_url: str | None
    cancel_requested: bool
    created_at: Timestamp
    updated_at: Timestamp
    finished_at: Timestamp | None
    rerun_of: Annotated[Uuid | None, msgspec.Meta(description="The job this one is a re-run of.")]
    schedule_id: Annotated[
        Uuid | None, msgspec.Meta(description="The schedule that fired this job.")
    ] = None
    scheduled_for: Annotated[
        Timestamp | None, msgspec.Meta(description="The schedule's tick this job is for.")
    ] = None
    keep: Annotated[
        bool,
        msgspec.Meta(
            description='Never deleted by retention (POST or PATCH {"keep": true});'
            " a re-run of a kept job is not kept."
        ),
    ] = False


class Job(JobSummary, kw_only=True):
    """A job with its tasks."""

    tasks: list[Task]
    reruns: Annotated[
        list[Uuid],
        msgspec.Meta(
            description="Its newest re-runs (at most 20), newest first;"
            " GET /v1/jobs?rerun_of= lists them all."
        ),
    ]


class JobPage(msgspec.Struct, kw_only=True):
    """A page of the token's jobs, newest first."""

    jobs: list[JobSummary]
    next_cursor: Annotated[
        str | None,
        msgspec.Meta(description="Pass as ?cursor= for the next page; null on the last."),
    ]
