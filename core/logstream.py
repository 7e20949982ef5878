"""Live task output: stdout/stderr lines on a per-job Redis stream in the streams Redis.

Log lines never touch Postgres: the runner keeps the (bounded) full output in the task's
result, and these lines let a watcher see a task as it runs. The runner holds lines it
could not send (``runners.livelogs``) and sends them again once the streams Redis answers,
so a replay after an outage still has them. Sending again must not double a line: each
line carries its attempt's sequence number, and the append script skips any line whose
number is not above the last one the stream took for that attempt. A sent batch whose
answer was lost (a timeout after Redis ran it) is therefore harmless to resend.

The stream is bounded in length; it expires a day after its last line unless the
notifier, on the job's terminal event, shortens that to ``stream_ttl_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis.asyncio as redis

from core import keys

__all__ = [
    "LOG_LINE_MAX_CHARS",
    "LOG_STREAM_IDLE_TTL_SECONDS",
    "LOG_STREAM_MAXLEN",
    "LogLine",
    "publish_log",
    "publish_logs",
]

# Approximate (``MAXLEN ~``) bound on a job's log stream: trimming whole radix-tree nodes
# keeps XADD O(1) while holding memory near this many lines.
LOG_STREAM_MAXLEN = 5_000
# A single line longer than this is cut; a task that prints megabytes without a newline
# must not become one megabyte-sized stream entry.
LOG_LINE_MAX_CHARS = 4_096
# A stream whose job never ends (crashed runner, lost job) still goes away eventually.
LOG_STREAM_IDLE_TTL_SECONDS = 24 * 3600

STREAMS = ("stdout", "stderr")


@dataclass(frozen=True)
class LogLine:
    """One output line of an attempt, numbered from 1 in the order the task printed it."""

    seq: int
    stream: str
    line: str
    ts: float = field(default_factory=time.time)  # when it was printed, not when sent


# KEYS: the job's log stream, the job's "last line number per attempt" hash.
# ARGV: attempt field ("<task_id>:<attempt>"), task_id, attempt, maxlen, idle ttl, then per
# line: seq, stream, line, truncated, ts. Returns how many lines the stream took.
_APPEND_LUA = """
local field, task_id, attempt = ARGV[1], ARGV[2], ARGV[3]
local maxlen, ttl = ARGV[4], tonumber(ARGV[5])
local last = tonumber(redis.call('HGET', KEYS[2], field) or '0')
local added = 0
for i = 6, #ARGV, 5 do
    local seq = tonumber(ARGV[i])
    if seq > last then
        redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*',
            'task_id', task_id, 'attempt', attempt, 'stream', ARGV[i + 1],
            'line', ARGV[i + 2], 'truncated', ARGV[i + 3], 'ts', ARGV[i + 4], 'seq', ARGV[i])
        last = seq
        added = added + 1
    end
end
redis.call('HSET', KEYS[2], field, last)
-- NX: never lengthen the shorter expiry the notifier sets once the job has ended; the
-- numbers live exactly as long as the lines they guard.
redis.call('EXPIRE', KEYS[1], ttl, 'NX')
local left = redis.call('PTTL', KEYS[1])
if left > 0 then redis.call('PEXPIRE', KEYS[2], left) else redis.call('EXPIRE', KEYS[2], ttl) end
return added
"""


async def publish_logs(
    redis_client: redis.Redis,
    job_id: str,
    task_id: str,
    attempt: int,
    lines: Sequence[LogLine],
) -> int:
    """Append output lines of a running task to the job's log stream, each at most once.

    Lines numbered at or below the last one the stream took for this attempt are skipped,
    so a batch may be sent again after any failure. Returns how many were appended.
    Raises ``redis.RedisError`` when the streams Redis is unavailable.
    """
    args: list[str | int] = [
        f"{task_id}:{attempt}",
        task_id,
        str(attempt),
        LOG_STREAM_MAXLEN,
        LOG_STREAM_IDLE_TTL_SECONDS,
    ]
    for entry in lines:
        if entry.stream not in STREAMS:
            raise ValueError(f"stream must be one of {STREAMS}, got {entry.stream!r}")
        args += [
            entry.seq,
            entry.stream,
            entry.line[:LOG_LINE_MAX_CHARS],
            "1" if len(entry.line) > LOG_LINE_MAX_CHARS else "0",
            f"{entry.ts:.6f}",
        ]
    added = await redis_client.eval(
        _APPEND_LUA, 2, keys.log_stream(job_id), keys.log_seqs(job_id), *args
    )
    return int(added)


async def publish_log(
    redis_client: redis.Redis,
    job_id: str,
    task_id: str,
    attempt: int,
    stream: str,
    line: str,
    *,
    seq: int,
) -> None:
    """``publish_logs`` for one line (tests and tools that publish a line by hand)."""
    await publish_logs(redis_client, job_id, task_id, attempt, [LogLine(seq, stream, line)])
