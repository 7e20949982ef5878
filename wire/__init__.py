"""The API's resources as typed models: what the server answers and what the client reads.

One model per resource (msgspec Structs). The server builds its answers from them
(``core.views``), ``/openapi.json`` publishes their JSON Schemas (``core.openapi``), and the
client decodes every answer into them (``homerun.client``). This package imports nothing of
homerun's, so both sides can depend on it without depending on each other.
"""

from __future__ import annotations

from wire.artifacts import Artifact, ArtifactList, RefusedArtifact
from wire.codec import (
    REF_PREFIX,
    AnyJson,
    DecodeError,
    Timestamp,
    Uuid,
    components,
    decode,
    dumps,
    to_builtins,
)
from wire.errors import Error, ErrorBody, ErrorDetail
from wire.fanout import Instance, InstancePage, MapState
from wire.health import Health, Probe, Readiness, ReplicaState
from wire.jobs import (
    JOB_VIEW_OUTPUT_BYTES,
    Attempt,
    AttemptDetail,
    Job,
    JobPage,
    JobSummary,
    Resources,
    Result,
    Task,
    TaskDetail,
)
from wire.schedules import Catchup, Overlap, Schedule, SchedulePage, Tick, TickOutcome
from wire.secrets import SecretInfo, SecretList
from wire.statuses import (
    TERMINAL_JOB,
    TERMINAL_TASK,
    AttemptStatus,
    FailureKind,
    JobStatus,
    TaskStatus,
)
from wire.task_types import TaskTypeInfo, TaskTypeList

__all__ = [
    "JOB_VIEW_OUTPUT_BYTES",
    "REF_PREFIX",
    "TERMINAL_JOB",
    "TERMINAL_TASK",
    "AnyJson",
    "Artifact",
    "ArtifactList",
    "Attempt",
    "AttemptDetail",
    "AttemptStatus",
    "Catchup",
    "DecodeError",
    "Error",
    "ErrorBody",
    "ErrorDetail",
    "FailureKind",
    "Health",
    # fan-out
    "Instance",
    "InstancePage",
    "Job",
    "JobPage",
    "JobStatus",
    "JobSummary",
    "MapState",
    "Overlap",
    "Probe",
    "Readiness",
    "RefusedArtifact",
    "ReplicaState",
    "Resources",
    "Result",
    "Schedule",
    "SchedulePage",
    "SecretInfo",
    "SecretList",
    "Task",
    "TaskDetail",
    "TaskStatus",
    "TaskTypeInfo",
    "TaskTypeList",
    "Tick",
    "TickOutcome",
    "Timestamp",
    "Uuid",
    "components",
    "decode",
    "dumps",
    "to_builtins",
]
