"""Retention deletes a job with one DELETE on jobs (core/store/retention.py): every foreign
key that reaches a job must let that go, by cascade or by setting itself to NULL, and have
an index to find its rows, or each deleted row scans the referencing table.

Read from the catalog of a migrated database, so a table another branch adds (artifacts,
map instances, ...) is judged the moment it exists.
"""

from __future__ import annotations

import asyncpg
import pytest

pytestmark = pytest.mark.integration

# Each foreign key: (table, columns, referenced table, delete action, indexed).
_KEYS = """
SELECT c.conrelid::regclass::text AS tbl, c.confrelid::regclass::text AS ref,
       c.confdeltype::text AS action,
       ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n
             ORDER BY k.i)::text[] AS cols,
       EXISTS (SELECT 1 FROM pg_index x
               WHERE x.indrelid = c.conrelid
                 AND (x.indkey::int2[])[0:cardinality(c.conkey) - 1] @> c.conkey
                 AND (x.indkey::int2[])[0:cardinality(c.conkey) - 1] <@ c.conkey) AS indexed
FROM pg_constraint c WHERE c.contype = 'f'
"""

# Foreign keys allowed to go without an index: none (0093 indexes tasks.reused_from).
KNOWN_UNINDEXED: set[tuple[str, tuple[str, ...]]] = set()


async def test_every_key_reaching_a_job_cascades_or_nulls_with_an_index(
    migrated_database_url: str,
) -> None:
    conn = await asyncpg.connect(migrated_database_url)
    try:
        rows = await conn.fetch(_KEYS)
    finally:
        await conn.close()
    # The tables whose rows a job's deletion removes: jobs, and what cascades from them.
    removed = {"jobs"}
    while True:
        more = {r["tbl"] for r in rows if r["ref"] in removed and r["action"] == "c"} - removed
        if not more:
            break
        removed |= more
    reaching = [r for r in rows if r["ref"] in removed]
    assert {"tasks", "attempts", "results", "events"} <= removed
    refusing = [
        f"{r['tbl']}{tuple(r['cols'])} -> {r['ref']}" for r in reaching if r["action"] not in "cn"
    ]
    assert refusing == [], (
        "these keys would make deleting a job fail: ON DELETE CASCADE or SET NULL"
    )
    unindexed = {(r["tbl"], tuple(r["cols"])) for r in reaching if not r["indexed"]}
    assert unindexed == KNOWN_UNINDEXED
