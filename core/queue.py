"""The task queue on the first Redis: delivery with leases, priorities and delayed retries.

Postgres is the truth about every task; this queue only says *which runner should look at
which task next*. It is built from three sorted sets, changed only by Lua scripts so each
step is atomic:

- ``ready``: task ids a runner may take now, scored so that ``ZPOPMIN`` yields the highest
  priority first and, within a priority, the oldest;
- ``delayed``: retries waiting for their back-off, scored by the time they become due;
- ``inflight``: task ids a runner took, scored by the deadline of that delivery's lease.

Why not Redis Streams: a stream cannot reorder by priority, cannot hold an entry back until
a time (delayed retries), and cannot refuse a duplicate entry, so we would need a sorted set
beside it anyway. Three sorted sets give all of that with one ``ZSCORE`` per check, and
``ZADD`` under a "not present in any set" check makes enqueue idempotent per task id.

Delivery is at-least-once: an entry whose lease runs out (runner crashed between taking it
and acknowledging it) goes back to ``ready``. A duplicate delivery is harmless because
``core.transitions.claim_attempt`` starts an attempt only for a task that is queued in
Postgres, and every later write is fenced by the attempt number. Conversely, anything the
queue loses (a wiped Redis) is put back by the reconciler from Postgres.

Every delivery carries a random token held in ``owner``; only the holder of the token can
extend or acknowledge it, so a runner that stalled and woke up cannot drop the entry a
newer runner now holds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass

import redis.asyncio as redis

from core import keys
from core.models import PRIORITY_BOUND
from core.transitions import ReadyTask

__all__ = [
    "Delivery",
    "Empty",
    "ack",
    "add",
    "cancelled_attempts",
    "claim",
    "depth",
    "enqueue",
    "extend",
    "parse_cancel_message",
    "queued_task_ids",
    "requeue",
    "signal_cancel",
    "wait_for_work",
]

# ready-set score = -priority * PRIORITY_SPAN + enqueue time in ms. Epoch ms (~1.8e12)
# stays below the span, and |priority| <= PRIORITY_BOUND keeps the score an exact integer
# in a double (< 2**53), so ordering is exact.
PRIORITY_SPAN = 10**13
# How many wake-up tokens may wait in the wake list: enough to wake every idle runner of
# a large deployment, small enough that stale tokens cost a few empty loops at most.
WAKE_TOKENS_MAX = 64
# Due delayed entries and expired in-flight entries moved per claim (bounds script time).
MOVE_BATCH = 100

_KEYS = [
    keys.QUEUE_READY,
    keys.QUEUE_DELAYED,
    keys.QUEUE_INFLIGHT,
    keys.QUEUE_PRIORITY,
    keys.QUEUE_OWNER,
    keys.QUEUE_WAKE,
]

# Shared prologue: KEYS as in _KEYS. Lua turns a number into a string with "%.14g", which
# would round large scores, so every score is formatted explicitly.
_PROLOGUE = """
local READY, DELAYED, INFLIGHT = KEYS[1], KEYS[2], KEYS[3]
local PRIO, OWNER, WAKE = KEYS[4], KEYS[5], KEYS[6]
local SPAN = tonumber(ARGV[1])
local function fmt(n) return string.format('%.0f', n) end
local function ready_score(id, ts)
  local p = tonumber(redis.call('HGET', PRIO, id) or '0')
  return fmt(-p * SPAN + ts)
end
local function wake(n, cap)
  if n <= 0 then return end
  for _ = 1, math.min(n, cap) do redis.call('LPUSH', WAKE, '1') end
  redis.call('LTRIM', WAKE, 0, cap - 1)
end
"""

# ARGV: span, now_ms, wake cap, then (task_id, priority, not_before_ms) triples.
_ENQUEUE = (
    _PROLOGUE
    + """
local now, cap = tonumber(ARGV[2]), tonumber(ARGV[3])
local added, woken = 0, 0
for i = 4, #ARGV, 3 do
  local id, p, nb = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  -- Already waiting or held by a runner: one delivery per task id.
  if not redis.call('ZSCORE', INFLIGHT, id) and not redis.call('ZSCORE', READY, id) then
    local due = redis.call('ZSCORE', DELAYED, id)
    if not due then added = added + 1 end
    if nb > now then
      -- A second enqueue with an earlier due time wins; a later one changes nothing.
      if not due or tonumber(due) > nb then
        redis.call('HSET', PRIO, id, p)
        redis.call('ZADD', DELAYED, fmt(nb), id)
        woken = woken + 1  -- an idle runner recomputes how long to sleep
      end
    else
      if due then redis.call('ZREM', DELAYED, id) end
      redis.call('HSET', PRIO, id, p)
      redis.call('ZADD', READY, fmt(-p * SPAN + now), id)
      woken = woken + 1
    end
  end
end
wake(woken, cap)
return added
"""
)

# ARGV: span, now_ms, lease_ms, token, batch. Returns {task_id or '', next_due_ms or ''}.
_CLAIM = (
    _PROLOGUE
    + """
local now, lease, token, batch = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', DELAYED, '-inf', now, 'LIMIT', 0, batch)) do
  local due = tonumber(redis.call('ZSCORE', DELAYED, id))
  redis.call('ZREM', DELAYED, id)
  redis.call('ZADD', READY, ready_score(id, due), id)
end
-- A delivery whose lease ran out goes back to ready: at-least-once.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', INFLIGHT, '-inf', now, 'LIMIT', 0, batch)) do
  redis.call('ZREM', INFLIGHT, id)
  redis.call('HDEL', OWNER, id)
  redis.call('ZADD', READY, ready_score(id, now), id)
end
local popped = redis.call('ZPOPMIN', READY)
if popped[1] then
  local id = popped[1]
  redis.call('ZADD', INFLIGHT, fmt(now + lease), id)
  redis.call('HSET', OWNER, id, token)
  return {id, ''}
end
local next_due = nil
local d = redis.call('ZRANGE', DELAYED, 0, 0, 'WITHSCORES')
if d[2] then next_due = tonumber(d[2]) end
local f = redis.call('ZRANGE', INFLIGHT, 0, 0, 'WITHSCORES')
if f[2] and (not next_due or tonumber(f[2]) < next_due) then next_due = tonumber(f[2]) end
return {'', next_due and fmt(next_due) or ''}
"""
)

# ARGV: span, now_ms, lease_ms, token, task_id. Returns 1 if the caller still holds it.
_EXTEND = (
    _PROLOGUE
    + """
local id = ARGV[5]
if redis.call('HGET', OWNER, id) ~= ARGV[4] then return 0 end
redis.call('ZADD', INFLIGHT, fmt(tonumber(ARGV[2]) + tonumber(ARGV[3])), id)
return 1
"""
)

# ARGV: span, now_ms, wake cap, token, task_id, requeue (0/1), priority, not_before_ms.
# Acknowledge a delivery; with requeue=1 put the task straight back (ready or delayed).
_ACK = (
    _PROLOGUE
    + """
local now, cap, token, id = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]
if redis.call('HGET', OWNER, id) ~= token then return 0 end
redis.call('ZREM', INFLIGHT, id)
redis.call('HDEL', OWNER, id)
if ARGV[6] == '1' then
  local p, nb = tonumber(ARGV[7]), tonumber(ARGV[8])
  redis.call('HSET', PRIO, id, p)
  if nb > now then
    redis.call('ZADD', DELAYED, fmt(nb), id)
  else
    redis.call('ZADD', READY, fmt(-p * SPAN + now), id)
  end
  wake(1, cap)
else
  redis.call('HDEL', PRIO, id)
end
return 1
"""
)


@dataclass(frozen=True)
class Delivery:
    """One hand-over of a task id to a runner; ``token`` proves who holds it."""

    task_id: str
    token: str


@dataclass(frozen=True)
class Empty:
    """Nothing ready; ``next_due`` is when a delayed or leased entry comes due (epoch s)."""

    next_due: float | None


def _now_ms() -> int:
    return int(time.time() * 1000)


def _due_ms(task: ReadyTask) -> int:
    return 0 if task.not_before is None else int(task.not_before.timestamp() * 1000)


def _priority(priority: int) -> int:
    return max(-PRIORITY_BOUND, min(PRIORITY_BOUND, int(priority)))


async def _run(client: redis.Redis, script: str, args: list[str | int | float]) -> object:
    # EVAL (not EVALSHA) keeps this correct across a SCRIPT FLUSH or a fresh Redis; the
    # scripts are a few hundred bytes, which costs nothing next to a container start.
    return await client.eval(script, len(_KEYS), *_KEYS, PRIORITY_SPAN, *args)


async def enqueue(client: redis.Redis, tasks: Iterable[ReadyTask]) -> None:
    """Hand tasks to the queue. Idempotent per task id; call only after Postgres committed.

    A task already waiting (ready or delayed) or held by a runner is left alone, so the
    API, the runner and the reconciler may all enqueue the same task without a duplicate
    delivery. ``priority``: higher first (clamped to +-PRIORITY_BOUND). ``not_before``:
    held back until then (delayed retries).
    """
    await add(client, tasks)


async def add(client: redis.Redis, tasks: Iterable[ReadyTask]) -> int:
    """``enqueue``, returning how many tasks the queue did not know about yet."""
    args: list[str | int | float] = []
    for task in tasks:
        args += [task.task_id, _priority(task.priority), _due_ms(task)]
    added = 0
    # Batches keep each script call short; other clients wait while a script runs.
    step = 3 * 500
    for start in range(0, len(args), step):
        reply = await _run(
            client, _ENQUEUE, [_now_ms(), WAKE_TOKENS_MAX, *args[start : start + step]]
        )
        added += int(reply)  # type: ignore[call-overload]
    return added


async def claim(client: redis.Redis, *, lease_seconds: float, token: str) -> Delivery | Empty:
    """Take the next task id, holding it for ``lease_seconds`` unless extended or acked."""
    reply = await _run(client, _CLAIM, [_now_ms(), int(lease_seconds * 1000), token, MOVE_BATCH])
    assert isinstance(reply, list)
    task_id, next_due = (_text(v) for v in reply)
    if task_id:
        return Delivery(task_id, token)
    return Empty(int(next_due) / 1000 if next_due else None)


async def wait_for_work(client: redis.Redis, seconds: float) -> None:
    """Block until an enqueue wakes us, or ``seconds`` pass (whichever is first)."""
    # BLPOP's timeout has a resolution of about a millisecond; 0 would block forever.
    await client.blpop([keys.QUEUE_WAKE], timeout=max(seconds, 0.01))


async def extend(client: redis.Redis, delivery: Delivery, *, lease_seconds: float) -> bool:
    """Push a delivery's lease out; False if someone else holds the task id now."""
    reply = await _run(
        client,
        _EXTEND,
        [_now_ms(), int(lease_seconds * 1000), delivery.token, delivery.task_id],
    )
    return bool(reply)


async def ack(client: redis.Redis, delivery: Delivery) -> bool:
    """Drop a delivery for good; False if it was no longer ours (nothing changed)."""
    reply = await _run(
        client, _ACK, [_now_ms(), WAKE_TOKENS_MAX, delivery.token, delivery.task_id, 0, 0, 0]
    )
    return bool(reply)


async def requeue(client: redis.Redis, delivery: Delivery, task: ReadyTask) -> bool:
    """Acknowledge a delivery and put its task back (ready or delayed) in one step."""
    reply = await _run(
        client,
        _ACK,
        [
            _now_ms(),
            WAKE_TOKENS_MAX,
            delivery.token,
            delivery.task_id,
            1,
            _priority(task.priority),
            _due_ms(task),
        ],
    )
    return bool(reply)


async def queued_task_ids(client: redis.Redis) -> set[str]:
    """Every task id the queue knows about (ready, delayed or in flight)."""
    found: set[str] = set()
    for key in (keys.QUEUE_READY, keys.QUEUE_DELAYED, keys.QUEUE_INFLIGHT):
        found |= {_text(v) for v in await client.zrange(key, 0, -1)}
    return found


async def depth(client: redis.Redis) -> dict[str, int]:
    """How many entries wait in each part of the queue (for metrics and tests)."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.zcard(keys.QUEUE_READY)
        pipe.zcard(keys.QUEUE_DELAYED)
        pipe.zcard(keys.QUEUE_INFLIGHT)
        ready, delayed, inflight = await pipe.execute()
    return {"ready": int(ready), "delayed": int(delayed), "inflight": int(inflight)}


# --- cancellation -----------------------------------------------------------------------

# A cancel key outlives any lease many times over; it only has to bridge a pub/sub gap.
CANCEL_KEY_TTL_SECONDS = 3600


async def signal_cancel(client: redis.Redis, task_id: str, attempt: int) -> None:
    """Tell whichever runner runs ``attempt`` of ``task_id`` to kill its container now.

    Pub/sub reaches a listening runner at once; the key is the backup a runner polls
    (about once a second) in case it missed the message while reconnecting. Postgres's
    ``cancel_requested``, seen at the next heartbeat, is the last resort.
    """
    message = json.dumps({"task_id": task_id, "attempt": attempt})
    async with client.pipeline(transaction=False) as pipe:
        pipe.set(keys.queue_cancel(task_id), str(attempt), ex=CANCEL_KEY_TTL_SECONDS)
        pipe.publish(keys.CANCEL_CHANNEL, message)
        await pipe.execute()


async def cancelled_attempts(
    client: redis.Redis, running: Iterable[tuple[str, int]]
) -> set[tuple[str, int]]:
    """Which of the given (task_id, attempt) pairs have a cancel key set."""
    pairs = list(running)
    if not pairs:
        return set()
    values = await client.mget([keys.queue_cancel(task_id) for task_id, _ in pairs])
    return {
        (task_id, attempt)
        for (task_id, attempt), value in zip(pairs, values, strict=True)
        if value is not None and int(_text(value)) == attempt
    }


def parse_cancel_message(data: bytes | str) -> tuple[str, int] | None:
    """(task_id, attempt) from a message on ``CANCEL_CHANNEL``; None if malformed."""
    try:
        message = json.loads(data)
        return str(message["task_id"]), int(message["attempt"])
    except (ValueError, KeyError, TypeError):
        return None


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)
