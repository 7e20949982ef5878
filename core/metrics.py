"""The Prometheus registry every homerun service adds its metrics to.

One registry per process, not prometheus-client's global default, so ``/metrics`` shows
exactly homerun's series. Other services define theirs the same way::

    from core.metrics import REGISTRY
    RELAYED = Counter("homerun_events_relayed_total", "...", registry=REGISTRY)

Counters are process-wide: tests that build several apps in one process compare deltas.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = [
    "CANCEL_SIGNAL_FAILURES",
    "CONTENT_TYPE_LATEST",
    "DB_READS",
    "ENQUEUE_FAILURES",
    "HTTP_REQUESTS",
    "HTTP_REQUEST_SECONDS",
    "JOBS_SUBMITTED",
    "PLUGIN_ERRORS",
    "RATE_LIMITED",
    "RATE_LIMITER_ERRORS",
    "READ_YOUR_WRITES_ERRORS",
    "REGISTRY",
    "REPLICA_FALLBACKS",
    "REPLICA_UP",
    "render",
]

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "homerun_http_requests_total",
    "HTTP requests answered, by route template, method and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_REQUEST_SECONDS = Histogram(
    "homerun_http_request_seconds",
    "Time to answer an HTTP request, by route template and method.",
    ["method", "route"],
    registry=REGISTRY,
)
DB_READS = Counter(
    "homerun_db_reads_total",
    "Plain reads, by the server that answered them (replica or primary).",
    ["target"],
    registry=REGISTRY,
)
REPLICA_FALLBACKS = Counter(
    "homerun_replica_fallbacks_total",
    "Reads meant for the replica that the primary answered, by reason.",
    ["reason"],
    registry=REGISTRY,
)
REPLICA_UP = Gauge(
    "homerun_replica_up",
    "1 while reads go to the streaming replica, 0 while they fall back to the primary.",
    registry=REGISTRY,
)
JOBS_SUBMITTED = Counter(
    "homerun_jobs_submitted_total",
    "Jobs accepted by POST /v1/jobs (idempotent replays are not counted).",
    registry=REGISTRY,
)
ENQUEUE_FAILURES = Counter(
    "homerun_enqueue_failures_total",
    "Accepted jobs whose ready tasks could not be handed to the queue Redis"
    " (the runner's reconciler enqueues them from Postgres later).",
    registry=REGISTRY,
)
CANCEL_SIGNAL_FAILURES = Counter(
    "homerun_cancel_signal_failures_total",
    "Cancellations committed in Postgres whose signal to the runners could not be sent"
    " (runners still see cancel_requested on their next heartbeat).",
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "homerun_rate_limited_total",
    "Requests refused with 429 by the per-token rate limit.",
    registry=REGISTRY,
)
AUTH_FAILURES_REFUSED = Counter(
    "homerun_auth_failures_refused_total",
    "Requests refused with 429 because their source failed authentication too often.",
    registry=REGISTRY,
)
RATE_LIMITER_ERRORS = Counter(
    "homerun_rate_limiter_errors_total",
    "Requests checked by the API process's own bucket because the queue Redis could not be"
    " asked (down, or refusing writes).",
    registry=REGISTRY,
)
READINESS_PROBES = Counter(
    "homerun_readiness_probes_total",
    "Probes of the primary and the queue Redis made for /readyz (one serves many callers).",
    registry=REGISTRY,
)
SSE_OPEN = Gauge(
    "homerun_sse_streams_open",
    "Live event streams this API process holds open.",
    registry=REGISTRY,
)
SSE_REFUSED = Counter(
    "homerun_sse_streams_refused_total",
    "Live event streams refused: the token's cap (token) or the process's (process).",
    ["cap"],
    registry=REGISTRY,
)
READ_YOUR_WRITES_ERRORS = Counter(
    "homerun_read_your_writes_errors_total",
    "Reads sent to the primary because the queue Redis could not say whether the token"
    " wrote recently.",
    registry=REGISTRY,
)
PLUGIN_ERRORS = Counter(
    "homerun_plugin_errors_total",
    "Unexpected exceptions from a task type's build_spec at submission (answered as 422).",
    ["task_type"],
    registry=REGISTRY,
)


def render() -> bytes:
    return generate_latest(REGISTRY)
