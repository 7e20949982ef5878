"""Every Redis key and stream name homerun uses: ``homerun:<kind>:<id>``.

Nothing outside this module spells a key; that keeps the layout greppable and lets an
operator see at a glance what lives in each Redis.
"""

from __future__ import annotations

PREFIX = "homerun"

# --- queue Redis
# Each token's ready tasks are a sorted set of their own, ``queue_ready(token_id)``; the
# queue's scripts build those names from this prefix (one per token with work, so they
# cannot all be declared up front).
QUEUE_READY_PREFIX = f"{PREFIX}:queue:ready:"
# Tokens that have ready tasks, scored by the turn they were last served at: a claim serves
# the lowest score, the least recently served token.
QUEUE_TOKENS = f"{PREFIX}:queue:tokens"
# The turn counter: incremented by every claim.
QUEUE_TURN = f"{PREFIX}:queue:turn"
# task id -> token id, so a delayed, reclaimed or acknowledged entry finds its token.
QUEUE_TASK_TOKEN = f"{PREFIX}:queue:tasktoken"
# token id -> deliveries in flight, checked against the per-token cap at claim.
QUEUE_RUNNING = f"{PREFIX}:queue:running"
QUEUE_DELAYED = f"{PREFIX}:queue:delayed"
QUEUE_INFLIGHT = f"{PREFIX}:queue:inflight"
# task id -> priority, so a delayed or reclaimed entry re-enters the ready set in order.
QUEUE_PRIORITY = f"{PREFIX}:queue:priority"
# task id -> delivery token of the runner holding it, so only that runner acks or extends.
QUEUE_OWNER = f"{PREFIX}:queue:owner"
# A short list runners block on (BLPOP) to hear about new work without polling. Work for
# a runner group waits behind ``queue_wake(label_set)``: a runner blocks on the lists of
# every label set it can take (core/runnergroups.py), so work it cannot take never wakes it.
QUEUE_WAKE = f"{PREFIX}:queue:wake"
# --- runner groups in the queue: a token's work that ``runs_on`` labels waits in a ready
# line of its own per label set, ``queue_ready(token_id, label_set)``; this set per token
# names its non-empty labelled lines (the unlabelled one is always looked at).
QUEUE_LINES_PREFIX = f"{PREFIX}:queue:lines:"
# task id -> its label set, for the tasks that have one.
QUEUE_TASK_LABELS = f"{PREFIX}:queue:tasklabels"
# The label sets that have a rotation of their own, ``queue_tokens(label_set)``: the tokens
# with work in that label set's lines, scored like QUEUE_TOKENS (which is the unlabelled
# lines' rotation), so a claim walks only the rotations its runner may serve.
QUEUE_LABEL_SETS = f"{PREFIX}:queue:labelsets"
# Pub/sub channel that tells runners to kill a cancelled attempt's container now.
CANCEL_CHANNEL = f"{PREFIX}:cancels"
# Held briefly by the runner that reconciles Postgres with the queue this period.
RECONCILER_LOCK = f"{PREFIX}:reconciler:lock"


def queue_ready(token_id: str, label_set: str = "") -> str:
    # The unlabelled line keeps the name it had before runner groups existed.
    if not label_set:
        return f"{QUEUE_READY_PREFIX}{token_id}"
    return f"{QUEUE_READY_PREFIX}{token_id}@{label_set}"


def queue_lines(token_id: str) -> str:
    return f"{QUEUE_LINES_PREFIX}{token_id}"


def queue_tokens(label_set: str = "") -> str:
    return QUEUE_TOKENS if not label_set else f"{QUEUE_TOKENS}:{label_set}"


def queue_wake(label_set: str = "") -> str:
    return QUEUE_WAKE if not label_set else f"{QUEUE_WAKE}:{label_set}"


def queue_cancel(task_id: str) -> str:
    return f"{PREFIX}:cancel:{task_id}"


def rate_limit(token_id: str) -> str:
    return f"{PREFIX}:ratelimit:{token_id}"


def recent_write(token_id: str) -> str:
    """Set, with a TTL, while this token's reads are pinned to the primary (read-your-writes)."""
    return f"{PREFIX}:recentwrite:{token_id}"


def runner_heartbeat(runner_id: str) -> str:
    return f"{PREFIX}:runner:{runner_id}"


# --- streams Redis
def job_stream(job_id: str) -> str:
    return f"{PREFIX}:events:{job_id}"


def token_stream(token_id: str) -> str:
    # Entry ids are "<token_seq>-0". (Streams under the former "tokenevents" kind had
    # time-based ids, which would refuse every such append; they are left to expire.)
    return f"{PREFIX}:tokenfeed:{token_id}"


def log_stream(job_id: str) -> str:
    return f"{PREFIX}:logs:{job_id}"


def log_seqs(job_id: str) -> str:
    # A hash "<task_id>:<attempt>" -> the last line number the job's log stream took.
    return f"{PREFIX}:logseqs:{job_id}"
