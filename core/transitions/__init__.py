"""The job and task state machine, as transactions on the primary.

Every status change happens here, together with its event (``core.outbox``), so the API,
the runner and the reconciler cannot disagree about what a transition means. Each
function runs in one transaction and returns what the caller must do after the commit
(enqueue ready tasks, signal cancellations); Redis is only ever told about committed facts.

Lock order: every transition locks the job row before any of its task rows (and the
job row serialises the job's event numbers), so two transitions of one job queue up
behind each other instead of deadlocking.

Attempt writes are fenced: ``tasks.attempts`` holds the number of the latest attempt, and
a write about attempt N applies only while N is still the latest and still running. A
runner that stalled past its lease and wakes up finds its writes refused.
"""

from __future__ import annotations

from core.transitions.attempts import (
    claim_attempt,
    expire_leases,
    finish_attempt,
    heartbeat,
    record_container,
)
from core.transitions.cancellation import cancel_job
from core.transitions.scheduling import (
    Fired,
    Pass,
    PassFailed,
    TickTaken,
    advance_due,
    trigger,
)
from core.transitions.submission import create_job
from core.transitions.types import (
    MAX_INFRASTRUCTURE_RETRIES,
    Aftermath,
    Claim,
    Created,
    Heartbeat,
    IdempotencyConflict,
    MapSpec,
    NewJob,
    NewTask,
    Outcome,
    ReadyTask,
    Reused,
)

__all__ = [
    "MAX_INFRASTRUCTURE_RETRIES",
    "Aftermath",
    "Claim",
    "Created",
    "Fired",
    "Heartbeat",
    "IdempotencyConflict",
    "MapSpec",
    "NewJob",
    "NewTask",
    "Outcome",
    "Pass",
    "PassFailed",
    "ReadyTask",
    "Reused",
    "TickTaken",
    "advance_due",
    "cancel_job",
    "claim_attempt",
    "create_job",
    "expire_leases",
    "finish_attempt",
    "heartbeat",
    "record_container",
    "trigger",
]
