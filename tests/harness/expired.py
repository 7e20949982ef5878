"""Finished jobs written straight into Postgres (and their stream entries into the streams
Redis), as they would be after running long ago: what retention's test and bench purge.

Each job has one task with one attempt and its result, and two relayed events numbered
in the token's feed; ``stream_entries`` puts those events in the token's stream as the
notifier would have. Thousands of jobs take a few statements, not thousands of requests.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
import redis.asyncio as redis
from redis.typing import EncodableT, FieldT

from core import keys
from core.events import stream_id

__all__ = ["seed_finished_jobs", "stream_entries"]


async def seed_finished_jobs(
    dsn: str,
    token_id: str,
    count: int,
    *,
    finished_at: datetime,
    keep: bool = False,
    status: str = "succeeded",
) -> list[str]:
    """``count`` jobs of the token that finished at ``finished_at``, their ids. With an
    unfinished ``status`` ("running") they have no finished_at and started then."""
    finished = finished_at if status in {"succeeded", "failed", "cancelled"} else None
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            # The token row first, as every transition takes it: numbers its events.
            first = await conn.fetchval(
                "UPDATE tokens SET event_seq = event_seq + 2 * $2 WHERE id = $1"
                " RETURNING event_seq - 2 * $2",
                token_id,
                count,
            )
            rows = await conn.fetch(
                "INSERT INTO jobs (id, token_id, status, keep, created_at, updated_at,"
                " finished_at, event_seq)"
                " SELECT gen_random_uuid(), $1, $2, $3, $4, $4, $5, 2"
                " FROM generate_series(1, $6) RETURNING id",
                token_id,
                status,
                keep,
                finished_at,
                finished,
                count,
            )
            ids = [r["id"] for r in rows]
            await conn.execute(
                "INSERT INTO tasks (id, job_id, name, type, payload, status, max_attempts,"
                " attempts, output, output_bytes, finished_at)"
                " SELECT gen_random_uuid(), j, 'a', 'shell', '{\"script\": \"true\"}', $2, 1, 1,"
                " '{\"n\": 1}', 8, $3 FROM unnest($1::uuid[]) AS j",
                ids,
                status,
                finished,
            )
            await conn.execute(
                "INSERT INTO attempts (task_id, number, runner_id, status, lease_expires_at,"
                " finished_at, exit_code)"
                " SELECT t.id, 1, 'seed', $2, $3, $3, 0 FROM tasks t WHERE t.job_id = ANY($1)",
                ids,
                status,
                finished_at,
            )
            await conn.execute(
                "INSERT INTO results (task_id, attempt, exit_code, stdout)"
                " SELECT t.id, 1, 0, 'line' FROM tasks t WHERE t.job_id = ANY($1)",
                ids,
            )
            await conn.execute(
                "INSERT INTO events (job_id, seq, type, token_id, token_seq, created_at,"
                " relayed_at)"
                " SELECT j.id, s.seq, CASE s.seq WHEN 1 THEN 'job.created' ELSE 'job.succeeded'"
                " END, $2, $3 + 2 * (j.n - 1) + s.seq, $4, $4"
                " FROM unnest($1::uuid[]) WITH ORDINALITY AS j(id, n),"
                " generate_series(1, 2) AS s(seq)",
                ids,
                token_id,
                first,
                finished_at,
            )
        return [str(i) for i in ids]
    finally:
        await conn.close()


async def stream_entries(dsn: str, streams: redis.Redis, job_ids: list[str]) -> int:
    """Append the jobs' events to their token's stream and job stream (as the relay does),
    and a log line to each job's log stream; how many token stream entries were added."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT job_id, seq, token_id, token_seq, type FROM events"
            " WHERE job_id = ANY($1::uuid[]) ORDER BY token_seq",
            job_ids,
        )
    finally:
        await conn.close()
    async with streams.pipeline(transaction=False) as pipe:
        for r in rows:
            fields: dict[FieldT, EncodableT] = {"type": str(r["type"]), "event": "{}"}
            pipe.xadd(keys.token_stream(str(r["token_id"])), fields, id=stream_id(r["token_seq"]))
            pipe.xadd(keys.job_stream(str(r["job_id"])), fields, id=stream_id(r["seq"]))
        for job_id in job_ids:
            pipe.xadd(keys.log_stream(job_id), {"line": "hello", "seq": "1"})
            pipe.hset(keys.log_seqs(job_id), "t:1", "1")
        await pipe.execute()
    return len(rows)
