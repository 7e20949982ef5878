"""The task queue on the first Redis: delivery with leases, priorities, delays, fair share.

Postgres is the truth about every task; this queue only says *which runner should look at
which task next*. It is built from sorted sets, changed only by Lua scripts so each step
is atomic:

- ``ready:<token>``: per API token, the task ids a runner may take now, scored so that
  ``ZPOPMIN`` yields that token's highest priority first and, within a priority, its oldest;
- ``tokens``: the tokens that have ready tasks, scored by the turn they were last served;
- ``delayed``: retries waiting for their back-off, scored by the time they become due;
- ``inflight``: task ids a runner took, scored by the deadline of that delivery's lease.

Fair share: a claim serves the token that was served least recently (lowest score in
``tokens``) and then moves it to the back of the line, so when several tokens have work
ready, claims rotate among them; priority orders tasks *within* a token, never across
tokens (a client picks its own priorities, so they cannot rank it against others). A token
that had nothing ready joins behind every token already waiting, so draining and refilling
gains nothing. ``running`` counts each token's deliveries in flight (claim adds one, an
acknowledgement or a lease running out takes it back, in the same scripts), so the
per-token cap is checked atomically at claim: a token at its cap is skipped and the next
one served; the acknowledgement that frees its slot wakes a runner.

Why not Redis Streams: a stream cannot reorder by priority, cannot hold an entry back until
a time (delayed retries), and cannot refuse a duplicate entry, so we would need a sorted set
beside it anyway. Sorted sets give all of that with one ``ZSCORE`` per check, and ``ZADD``
under a "not present in any set" check makes enqueue idempotent per task id.

Delivery is at-least-once: an entry whose lease runs out (runner crashed between taking it
and acknowledging it) goes back to its token's ready set. A duplicate delivery is harmless
because ``core.transitions.claim_attempt`` starts an attempt only for a task that is queued
in Postgres, and every later write is fenced by the attempt number. Conversely, anything the
queue loses (a wiped Redis) is put back by the reconciler from Postgres; the running counts
start again from zero then, so for the length of the attempts already running a token may
briefly exceed its cap.

Every delivery carries a random token held in ``owner``; only the holder of the token can
extend or acknowledge it, so a runner that stalled and woke up cannot drop the entry a
newer runner now holds.

Runner groups: a task that ``runs_on`` labels waits in a line of its own, one per token
and label set (``ready:<token>@<label set>``; ``lines:<token>`` names a token's labelled
lines that hold work), and ``tasklabels`` remembers its label set for a retry or a lost
lease. Each label set has its rotation of tokens (``tokens`` is the unlabelled lines',
``tokens:<label set>`` the others', ``labelsets`` names those that exist), and a token has
one turn in all of them: a claim looks only at the rotations of the label sets its runner
may serve, takes the token served least recently in any of them (below its cap), pops the
best head (priority, then age) among that token's lines it may serve, and moves the token
to the back of every rotation it is in. So the cap and the rotation stay per token, work
for a group that is down costs other runners' claims nothing, and a token that waited for
its group is served first once a runner of that group claims.
Wake-ups are per label set too (``keys.queue_wake``): a runner blocks on the lists of the
label sets it can take, so a task for another group never spends its wake-up on it.

The per-token ready sets are named inside the scripts (from ``keys.QUEUE_READY_PREFIX``),
not declared as script keys, since which tokens have work is only known there: the queue
Redis must be a single instance (or a primary with replicas), not a Redis Cluster.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass

import redis.asyncio as redis

from core import keys
from core.models import PRIORITY_BOUND
from core.runnergroups import label_set, subsets
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
    "running",
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
    keys.QUEUE_DELAYED,
    keys.QUEUE_INFLIGHT,
    keys.QUEUE_PRIORITY,
    keys.QUEUE_OWNER,
    keys.QUEUE_WAKE,
    keys.QUEUE_TOKENS,
    keys.QUEUE_TURN,
    keys.QUEUE_TASK_TOKEN,
    keys.QUEUE_RUNNING,
    keys.QUEUE_TASK_LABELS,
    keys.QUEUE_LABEL_SETS,
]

# Shared prologue: KEYS as in _KEYS; ARGV[1] the score span, ARGV[2] the ready-set prefix,
# ARGV[3] the lines prefix, each script's own arguments from ARGV[4]. Lua turns a number
# into a string with "%.14g", which would round large scores, so every score is formatted
# explicitly.
_PROLOGUE = """
local DELAYED, INFLIGHT, PRIO, OWNER, WAKE = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local TOKENS, TURN, TOKEN_OF, RUNNING = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local LABELS_OF, LABEL_SETS = KEYS[10], KEYS[11]
local SPAN, READY, LINES = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local function fmt(n) return string.format('%.0f', n) end
local function ready_score(id, ts)
  local p = tonumber(redis.call('HGET', PRIO, id) or '0')
  return fmt(-p * SPAN + ts)
end
local function token_of(id) return redis.call('HGET', TOKEN_OF, id) or '' end
local function labels_of(id) return redis.call('HGET', LABELS_OF, id) or '' end
-- A token's ready line for one label set (keys.queue_ready; '' is the unlabelled line).
local function line(tok, ls)
  if ls == '' then return READY .. tok end
  return READY .. tok .. '@' .. ls
end
local function wake_key(ls)
  if ls == '' then return WAKE end
  return WAKE .. ':' .. ls
end
-- The rotation of one label set (keys.queue_tokens): the tokens with work in that line.
local function rot(ls)
  if ls == '' then return TOKENS end
  return TOKENS .. ':' .. ls
end
-- tok's turn in whichever rotation it is in already (the same in all), or nil.
local function turn_of(tok)
  local s = redis.call('ZSCORE', TOKENS, tok)
  if s then return s end
  for _, ls in ipairs(redis.call('SMEMBERS', LINES .. tok)) do
    s = redis.call('ZSCORE', rot(ls), tok)
    if s then return s end
  end
  return nil
end
-- Into its token's line for its label set. A token new to every rotation queues behind
-- every token waiting already (their turns are below the current one) but before the
-- token served last (which holds the current turn): it waits one round, and never more.
-- A token in a rotation already joins another at the turn it has: one turn per token.
local function make_ready(id, tok, ls, score)
  redis.call('ZADD', line(tok, ls), score, id)
  if redis.call('ZSCORE', rot(ls), tok) then return end
  local turn = turn_of(tok)
  if not turn then
    turn = string.format('%.1f', tonumber(redis.call('GET', TURN) or '0') - 0.5)
  end
  if ls ~= '' then
    redis.call('SADD', LINES .. tok, ls)
    redis.call('SADD', LABEL_SETS, ls)
  end
  redis.call('ZADD', rot(ls), turn, tok)
end
-- A delivery of tok left flight (acknowledged, handed back, or its lease ran out).
local function release(tok)
  if redis.call('HINCRBY', RUNNING, tok, -1) <= 0 then redis.call('HDEL', RUNNING, tok) end
end
-- Wake runners that can take work of label set ls.
local function wake(ls, n, cap)
  if n <= 0 then return end
  local key = wake_key(ls)
  for _ = 1, math.min(n, cap) do redis.call('LPUSH', key, '1') end
  redis.call('LTRIM', key, 0, cap - 1)
end
"""

# ARGV from 4: now_ms, wake cap, then (task_id, token_id, priority, not_before_ms,
# label_set) quintuples.
_ENQUEUE = (
    _PROLOGUE
    + """
local now, cap = tonumber(ARGV[4]), tonumber(ARGV[5])
local added, woken = 0, {}
for i = 6, #ARGV, 5 do
  local id, tok, p, nb = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local ls = ARGV[i + 4]
  -- Already waiting or held by a runner: one delivery per task id.
  if not redis.call('ZSCORE', INFLIGHT, id) and not redis.call('ZSCORE', line(tok, ls), id) then
    local due = redis.call('ZSCORE', DELAYED, id)
    if not due then added = added + 1 end
    if nb > now then
      -- A second enqueue with an earlier due time wins; a later one changes nothing.
      if not due or tonumber(due) > nb then
        redis.call('HSET', PRIO, id, p)
        redis.call('HSET', TOKEN_OF, id, tok)
        if ls ~= '' then redis.call('HSET', LABELS_OF, id, ls) end
        redis.call('ZADD', DELAYED, fmt(nb), id)
        woken[ls] = (woken[ls] or 0) + 1  -- an idle runner recomputes how long to sleep
      end
    else
      if due then redis.call('ZREM', DELAYED, id) end
      redis.call('HSET', PRIO, id, p)
      redis.call('HSET', TOKEN_OF, id, tok)
      if ls ~= '' then redis.call('HSET', LABELS_OF, id, ls) end
      make_ready(id, tok, ls, fmt(-p * SPAN + now))
      woken[ls] = (woken[ls] or 0) + 1
    end
  end
end
for ls, n in pairs(woken) do wake(ls, n, cap) end
return added
"""
)

# ARGV from 4: now_ms, lease_ms, delivery token, batch, per-token cap (0: none), wake
# cap, the runner's labels (comma-joined). Returns {task_id or '', next_due_ms or ''}.
_CLAIM = (
    _PROLOGUE
    + """
local now, lease, token = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local batch, cap, wake_cap = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local have = {}
for label in string.gmatch(ARGV[10], '[^,]+') do have[label] = true end
local function fits(ls)
  for label in string.gmatch(ls, '[^,]+') do
    if not have[label] then return false end
  end
  return true
end
-- Entries that became ready here may be another group's: wake that group.
local function moved(id, tok, score)
  local ls = labels_of(id)
  make_ready(id, tok, ls, score)
  if not fits(ls) then wake(ls, 1, wake_cap) end
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', DELAYED, '-inf', now, 'LIMIT', 0, batch)) do
  local due = tonumber(redis.call('ZSCORE', DELAYED, id))
  redis.call('ZREM', DELAYED, id)
  moved(id, token_of(id), ready_score(id, due))
end
-- A delivery whose lease ran out goes back to ready: at-least-once.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', INFLIGHT, '-inf', now, 'LIMIT', 0, batch)) do
  local tok = token_of(id)
  redis.call('ZREM', INFLIGHT, id)
  redis.call('HDEL', OWNER, id)
  release(tok)
  moved(id, tok, ready_score(id, now))
end
-- The rotations this runner may serve: the unlabelled one and those of its label subsets.
local eligible = {''}
for _, ls in ipairs(redis.call('SMEMBERS', LABEL_SETS)) do
  if fits(ls) then table.insert(eligible, ls) end
end
-- The least recently served token below its cap in one rotation (capped tokens keep their
-- place), and its turn; only a turn below ``below`` is of interest.
local function first_uncapped(r, below)
  local start = 0
  while true do
    local page = redis.call('ZRANGE', r, start, start + 63, 'WITHSCORES')
    if not page[1] then return nil, nil end
    for i = 1, #page, 2 do
      local turn = tonumber(page[i + 1])
      if below and turn >= below then return nil, nil end
      if cap <= 0 or tonumber(redis.call('HGET', RUNNING, page[i]) or '0') < cap then
        return page[i], turn
      end
    end
    start = start + 64
  end
end
-- The head of tok's lines this runner may take: the best score (priority, then age)
-- among the lines of the eligible label sets.
local function best_line(tok)
  local best, best_score, best_ls = nil, nil, nil
  for _, ls in ipairs(eligible) do
    local head = redis.call('ZRANGE', line(tok, ls), 0, 0, 'WITHSCORES')
    if head[2] and (not best_score or tonumber(head[2]) < best_score) then
      best, best_score, best_ls = line(tok, ls), tonumber(head[2]), ls
    end
  end
  return best, best_ls
end
-- Fair share across the eligible rotations: the token served least recently in any of
-- them. A token is in a rotation exactly while its line there holds work; a stale entry
-- (which no script leaves, but a half-restored Redis might) is dropped and the walk redone.
for _ = 1, 16 do
  local tok, best_turn = nil, nil
  for _, ls in ipairs(eligible) do
    local t, turn = first_uncapped(rot(ls), best_turn)
    if t then tok, best_turn = t, turn end
  end
  if not tok then break end
  local key, ls = best_line(tok)
  if key then
    local id = redis.call('ZPOPMIN', key)[1]
    if redis.call('EXISTS', key) == 0 then
      redis.call('ZREM', rot(ls), tok)
      if ls ~= '' then redis.call('SREM', LINES .. tok, ls) end
    end
    -- Served: to the back of every rotation it is in.
    local turn = redis.call('INCR', TURN)
    redis.call('ZADD', TOKENS, 'XX', turn, tok)
    for _, other in ipairs(redis.call('SMEMBERS', LINES .. tok)) do
      redis.call('ZADD', rot(other), 'XX', turn, tok)
    end
    redis.call('ZADD', INFLIGHT, fmt(now + lease), id)
    redis.call('HSET', OWNER, id, token)
    -- The ack releases the count of token_of(id): make sure that is the one counted.
    redis.call('HSET', TOKEN_OF, id, tok)
    redis.call('HINCRBY', RUNNING, tok, 1)
    return {id, ''}
  end
  for _, stale in ipairs(eligible) do
    if redis.call('EXISTS', line(tok, stale)) == 0 then redis.call('ZREM', rot(stale), tok) end
  end
end
-- Label sets whose rotation emptied leave the list claims look at.
for _, ls in ipairs(eligible) do
  if ls ~= '' and redis.call('EXISTS', rot(ls)) == 0 then redis.call('SREM', LABEL_SETS, ls) end
end
local next_due = nil
local d = redis.call('ZRANGE', DELAYED, 0, 0, 'WITHSCORES')
if d[2] then next_due = tonumber(d[2]) end
local f = redis.call('ZRANGE', INFLIGHT, 0, 0, 'WITHSCORES')
if f[2] and (not next_due or tonumber(f[2]) < next_due) then next_due = tonumber(f[2]) end
return {'', next_due and fmt(next_due) or ''}
"""
)

# ARGV from 4: now_ms, lease_ms, delivery token, task_id. Returns 1 if the caller holds it.
_EXTEND = (
    _PROLOGUE
    + """
local id = ARGV[7]
if redis.call('HGET', OWNER, id) ~= ARGV[6] then return 0 end
redis.call('ZADD', INFLIGHT, fmt(tonumber(ARGV[4]) + tonumber(ARGV[5])), id)
return 1
"""
)

# ARGV from 4: now_ms, wake cap, delivery token, task_id, requeue (0/1), priority,
# not_before_ms. Acknowledge a delivery; with requeue=1 put the task straight back.
_ACK = (
    _PROLOGUE
    + """
local now, cap, token, id = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6], ARGV[7]
if redis.call('HGET', OWNER, id) ~= token then return 0 end
local tok = token_of(id)
local ls = labels_of(id)
redis.call('ZREM', INFLIGHT, id)
redis.call('HDEL', OWNER, id)
release(tok)
if ARGV[8] == '1' then
  local p, nb = tonumber(ARGV[9]), tonumber(ARGV[10])
  redis.call('HSET', PRIO, id, p)
  if nb > now then
    redis.call('ZADD', DELAYED, fmt(nb), id)
  else
    make_ready(id, tok, ls, fmt(-p * SPAN + now))
  end
  wake(ls, 1, cap)
else
  redis.call('HDEL', PRIO, id)
  redis.call('HDEL', TOKEN_OF, id)
  redis.call('HDEL', LABELS_OF, id)
  -- A slot of this token is free: work of its that a capped claim skipped may run now.
  if redis.call('EXISTS', READY .. tok) == 1 then wake('', 1, cap) end
  for _, other in ipairs(redis.call('SMEMBERS', LINES .. tok)) do wake(other, 1, cap) end
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
    return await client.eval(
        script,
        len(_KEYS),
        *_KEYS,
        PRIORITY_SPAN,
        keys.QUEUE_READY_PREFIX,
        keys.QUEUE_LINES_PREFIX,
        *args,
    )


async def enqueue(client: redis.Redis, tasks: Iterable[ReadyTask]) -> None:
    """Hand tasks to the queue. Idempotent per task id; call only after Postgres committed.

    A task already waiting (ready or delayed) or held by a runner is left alone, so the
    API, the runner and the reconciler may all enqueue the same task without a duplicate
    delivery. Each task waits in its token's line (``token_id``). ``priority``: higher
    first within that token (clamped to +-PRIORITY_BOUND). ``not_before``: held back
    until then (delayed retries).
    """
    await add(client, tasks)


async def add(client: redis.Redis, tasks: Iterable[ReadyTask]) -> int:
    """``enqueue``, returning how many tasks the queue did not know about yet."""
    args: list[str | int | float] = []
    for task in tasks:
        args += [
            task.task_id,
            task.token_id,
            _priority(task.priority),
            _due_ms(task),
            label_set(task.runs_on),
        ]
    added = 0
    # Batches keep each script call short; other clients wait while a script runs.
    step = 5 * 500
    for start in range(0, len(args), step):
        reply = await _run(
            client, _ENQUEUE, [_now_ms(), WAKE_TOKENS_MAX, *args[start : start + step]]
        )
        added += int(reply)  # type: ignore[call-overload]
    return added


async def claim(
    client: redis.Redis,
    *,
    lease_seconds: float,
    token: str,
    max_running_per_token: int = 0,
    labels: Iterable[str] = (),
) -> Delivery | Empty:
    """Take the next task id, holding it for ``lease_seconds`` unless extended or acked.

    The task comes from the least recently served API token that has fewer than
    ``max_running_per_token`` deliveries in flight (0: no cap) and work whose ``runs_on``
    is within ``labels`` (the claiming runner's); ``Empty`` if there is none.
    """
    reply = await _run(
        client,
        _CLAIM,
        [
            _now_ms(),
            int(lease_seconds * 1000),
            token,
            MOVE_BATCH,
            max_running_per_token,
            WAKE_TOKENS_MAX,
            label_set(labels),
        ],
    )
    assert isinstance(reply, list)
    task_id, next_due = (_text(v) for v in reply)
    if task_id:
        return Delivery(task_id, token)
    return Empty(int(next_due) / 1000 if next_due else None)


async def wait_for_work(client: redis.Redis, seconds: float, labels: Iterable[str] = ()) -> None:
    """Block until an enqueue of work we may take (``labels``: the runner's) wakes us, or
    ``seconds`` pass (whichever is first)."""
    # BLPOP's timeout has a resolution of about a millisecond; 0 would block forever.
    wake_keys = [keys.queue_wake(ls) for ls in subsets(labels)]
    await client.blpop(wake_keys, timeout=max(seconds, 0.01))


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


async def _ready_keys(client: redis.Redis) -> list[str]:
    """Every ready line: each label set's rotation names the tokens with work in it."""
    label_sets = ["", *(_text(ls) for ls in await client.smembers(keys.QUEUE_LABEL_SETS))]
    found = []
    for ls in label_sets:
        for token_id in await client.zrange(keys.queue_tokens(ls), 0, -1):
            found.append(keys.queue_ready(_text(token_id), ls))
    return found


async def queued_task_ids(client: redis.Redis) -> set[str]:
    """Every task id the queue knows about (ready, delayed or in flight)."""
    found: set[str] = set()
    for key in [*await _ready_keys(client), keys.QUEUE_DELAYED, keys.QUEUE_INFLIGHT]:
        found |= {_text(v) for v in await client.zrange(key, 0, -1)}
    return found


async def depth(client: redis.Redis) -> dict[str, int]:
    """How many entries wait in each part of the queue (for metrics and tests)."""
    ready_keys = await _ready_keys(client)
    async with client.pipeline(transaction=False) as pipe:
        for key in ready_keys:
            pipe.zcard(key)
        pipe.zcard(keys.QUEUE_DELAYED)
        pipe.zcard(keys.QUEUE_INFLIGHT)
        *ready, delayed, inflight = await pipe.execute()
    return {"ready": sum(int(n) for n in ready), "delayed": int(delayed), "inflight": int(inflight)}


async def running(client: redis.Redis) -> dict[str, int]:
    """Deliveries in flight per API token id (what the per-token cap is checked against)."""
    counts = await client.hgetall(keys.QUEUE_RUNNING)
    return {_text(k): int(_text(v)) for k, v in counts.items()}


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
