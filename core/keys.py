"""Every Redis key and stream name homerun uses: ``homerun:<kind>:<id>``.

Nothing outside this module spells a key; that keeps the layout greppable and lets an
operator see at a glance what lives in each Redis.
"""

from __future__ import annotations

PREFIX = "homerun"

# --- queue Redis
QUEUE_READY = f"{PREFIX}:queue:ready"
QUEUE_DELAYED = f"{PREFIX}:queue:delayed"
QUEUE_INFLIGHT = f"{PREFIX}:queue:inflight"


def queue_cancel(task_id: str) -> str:
    return f"{PREFIX}:cancel:{task_id}"


def rate_limit(token_id: str) -> str:
    return f"{PREFIX}:ratelimit:{token_id}"


def recent_write(token_id: str) -> str:
    """The primary's WAL position after this token's last write (read-your-writes)."""
    return f"{PREFIX}:recentwrite:{token_id}"


def runner_heartbeat(runner_id: str) -> str:
    return f"{PREFIX}:runner:{runner_id}"


# --- streams Redis
def job_stream(job_id: str) -> str:
    return f"{PREFIX}:events:{job_id}"


def token_stream(token_id: str) -> str:
    return f"{PREFIX}:tokenevents:{token_id}"


def log_stream(job_id: str) -> str:
    return f"{PREFIX}:logs:{job_id}"
