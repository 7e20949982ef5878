"""Migration 0005 numbers the events already there per token, and record_event goes on."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from databases import Database

from core import transitions as tr
from core.migrate import migrate, migration_files

pytestmark = pytest.mark.integration

VERSION = "0005_token_event_seq"


async def test_existing_events_get_token_numbers_in_the_order_they_were_written(
    database_url: str,
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        # The schema as it was before this migration, applied the way migrate() would.
        await conn.execute(
            "CREATE TABLE schema_migrations (version text PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, sql in migration_files():
            if version < VERSION:
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
        one, two, idle = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        for token in (one, two, idle):
            await conn.execute(
                "INSERT INTO tokens (id, name, hash, webhook_secret) VALUES ($1, 't', $2, 's')",
                token,
                token.bytes,
            )
        a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        for job, token, seqs in ((a, one, 3), (b, one, 2), (c, two, 2)):
            await conn.execute(
                "INSERT INTO jobs (id, token_id, status, event_seq) VALUES ($1, $2, 'queued', $3)",
                job,
                token,
                seqs,
            )
        # Two jobs of one token, their events interleaved as they were written.
        written = [(a, 1), (b, 1), (c, 1), (a, 2), (b, 2), (c, 2), (a, 3)]
        for job, seq in written:
            await conn.execute(
                "INSERT INTO events (job_id, seq, type) VALUES ($1, $2, 'x')", job, seq
            )
    finally:
        await conn.close()

    assert await migrate(database_url) == [v for v, _ in migration_files() if v >= VERSION]

    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT job_id, seq, token_id, token_seq FROM events ORDER BY id")
        assert [(r["job_id"], r["seq"], r["token_id"], r["token_seq"]) for r in rows] == [
            (a, 1, one, 1),
            (b, 1, one, 2),
            (c, 1, two, 1),
            (a, 2, one, 3),
            (b, 2, one, 4),
            (c, 2, two, 2),
            (a, 3, one, 5),
        ]
        latest = dict(await conn.fetch("SELECT id, event_seq FROM tokens"))
        assert latest == {one: 5, two: 2, idle: 0}
        nullable = await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'events'"
            " AND column_name IN ('token_id', 'token_seq') AND is_nullable = 'YES'"
        )
        assert nullable == []
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                "INSERT INTO events (job_id, seq, type, token_id, token_seq)"
                " VALUES ($1, 4, 'x', $2, 5)",
                a,
                one,
            )
    finally:
        await conn.close()

    # New events continue both numberings where the history left them.
    db = Database(database_url)
    await db.connect()
    try:
        await tr.cancel_job(db, str(b))
        rows = await db.fetch_all(
            "SELECT seq, token_seq FROM events WHERE job_id = :b ORDER BY seq", {"b": str(b)}
        )
        # b had no tasks: the cancel writes job.cancelled only.
        assert [(r["seq"], r["token_seq"]) for r in rows] == [(1, 2), (2, 4), (3, 6)]
    finally:
        await db.disconnect()
