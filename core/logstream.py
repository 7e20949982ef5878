"""Live task output: stdout/stderr lines on a per-job Redis stream in the streams Redis.

Log lines are best effort and never touch Postgres: the runner keeps the (bounded) full
output in the task's result, and these lines only let a watcher see a task as it runs.
The stream is bounded in length; it expires a day after its last line unless the
notifier, on the job's terminal event, shortens that to ``stream_ttl_seconds``.
"""

from __future__ import annotations

import time

import redis.asyncio as redis

from core import keys

__all__ = ["LOG_LINE_MAX_CHARS", "LOG_STREAM_IDLE_TTL_SECONDS", "LOG_STREAM_MAXLEN", "publish_log"]

# Approximate (``MAXLEN ~``) bound on a job's log stream: trimming whole radix-tree nodes
# keeps XADD O(1) while holding memory near this many lines.
LOG_STREAM_MAXLEN = 5_000
# A single line longer than this is cut; a task that prints megabytes without a newline
# must not become one megabyte-sized stream entry.
LOG_LINE_MAX_CHARS = 4_096
# A stream whose job never ends (crashed runner, lost job) still goes away eventually.
LOG_STREAM_IDLE_TTL_SECONDS = 24 * 3600

STREAMS = ("stdout", "stderr")


async def publish_log(
    redis_client: redis.Redis,
    job_id: str,
    task_id: str,
    attempt: int,
    stream: str,
    line: str,
) -> None:
    """Append one output line of a running task to the job's log stream.

    Raises ``redis.RedisError`` when the streams Redis is unavailable; callers treat log
    publishing as best effort (catch, count, move on) and bound their own rate.
    """
    if stream not in STREAMS:
        raise ValueError(f"stream must be one of {STREAMS}, got {stream!r}")
    truncated = len(line) > LOG_LINE_MAX_CHARS
    key = keys.log_stream(job_id)
    async with redis_client.pipeline(transaction=False) as pipe:
        pipe.xadd(
            key,
            {
                "task_id": task_id,
                "attempt": str(attempt),
                "stream": stream,
                "line": line[:LOG_LINE_MAX_CHARS],
                "truncated": "1" if truncated else "0",
                "ts": f"{time.time():.6f}",
            },
            maxlen=LOG_STREAM_MAXLEN,
            approximate=True,
        )
        # NX: never lengthen the shorter expiry the notifier sets once the job has ended.
        pipe.expire(key, LOG_STREAM_IDLE_TTL_SECONDS, nx=True)
        await pipe.execute()
