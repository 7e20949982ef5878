"""The ``events`` table outside its appends (``core.outbox``): feeds, relaying, numbering.

Every read selects ``EVENT_COLUMNS`` (``core.events``), what ``render`` needs, so an event
reads the same whichever road it takes to a client.
"""

from __future__ import annotations

from databases import Database
from databases.core import Connection
from databases.interfaces import Record

from core.db import Databases, Row
from core.events import EVENT_COLUMNS

__all__ = [
    "RELAY_LOCK_NS",
    "event_type_at",
    "job_feed",
    "latest_token_seq",
    "lock_job_for_relay",
    "mark_relayed",
    "pending_jobs",
    "token_feed",
    "unrelayed",
]

# Namespace of the two-key advisory locks ``(RELAY_LOCK_NS, hashtext(job_id))``; keeps them
# apart from any other advisory lock in the database.
RELAY_LOCK_NS = 0x686E  # "hn"

# --- feeds (core.feeds): a job's events by seq, a token's by token_seq ---------------------

# Filled in with constants only: which column picks the events, which one numbers them.
_FEED = (
    f"SELECT {EVENT_COLUMNS}, e.{{number}} AS feed_seq FROM events e"
    " WHERE e.{owner} = :owner AND e.{number} > :after{upto} ORDER BY e.{number} LIMIT :n"
)


async def _feed(
    db: Databases,
    owner_column: str,
    number: str,
    owner: str,
    after: int,
    *,
    upto: int | None,
    limit: int,
    primary: bool,
) -> list[Row]:
    bounded = f" AND e.{number} <= :upto" if upto is not None else ""
    query = _FEED.format(owner=owner_column, number=number, upto=bounded)
    values: dict[str, object] = {"owner": owner, "after": after, "n": limit}
    if upto is not None:
        values["upto"] = upto
    return list(await db.read_all(query, values, primary=primary))


async def job_feed(
    db: Databases, job_id: str, after: int, *, upto: int | None, limit: int, primary: bool
) -> list[Row]:
    """The job's events numbered (``seq``, as ``feed_seq``) after ``after``, up to ``upto``."""
    return await _feed(db, "job_id", "seq", job_id, after, upto=upto, limit=limit, primary=primary)


async def token_feed(
    db: Databases, token_id: str, after: int, *, upto: int | None, limit: int, primary: bool
) -> list[Row]:
    """The token's events numbered (``token_seq``, as ``feed_seq``) after ``after``."""
    return await _feed(
        db, "token_id", "token_seq", token_id, after, upto=upto, limit=limit, primary=primary
    )


async def event_type_at(db: Databases, job_id: str, seq: int) -> str | None:
    """The type of the job's event number ``seq`` (read on the primary), None if none."""
    kind = await db.read_val(
        "SELECT type FROM events WHERE job_id = :job_id AND seq = :seq",
        {"job_id": job_id, "seq": seq},
        primary=True,
    )
    return None if kind is None else str(kind)


async def latest_token_seq(db: Databases, token_id: str) -> int:
    """The token's newest event number (read on the primary); 0 before its first."""
    latest = await db.read_val(
        "SELECT event_seq FROM tokens WHERE id = :id", {"id": token_id}, primary=True
    )
    return int(latest or 0)


# --- relaying (notifier.relay) -----------------------------------------------------------


async def pending_jobs(db: Database, limit: int) -> list[str]:
    """Jobs with unrelayed events, the longest-waiting first."""
    rows = await db.fetch_all(
        "SELECT job_id FROM events WHERE relayed_at IS NULL"
        " GROUP BY job_id ORDER BY min(id) LIMIT :limit",
        {"limit": limit},
    )
    return [str(r["job_id"]) for r in rows]


async def lock_job_for_relay(conn: Connection, job_id: str) -> bool:
    """Take the job's relay lock for the rest of ``conn``'s transaction; False if taken."""
    return bool(
        await conn.fetch_val(
            "SELECT pg_try_advisory_xact_lock(:ns, hashtext(:job_id))",
            {"ns": RELAY_LOCK_NS, "job_id": job_id},
        )
    )


async def unrelayed(conn: Connection, job_id: str, limit: int) -> list[Record]:
    """The job's first ``limit`` unrelayed events in ``seq`` order, with their ``token_id``."""
    return await conn.fetch_all(
        f"SELECT {EVENT_COLUMNS}, e.token_id FROM events e"
        " WHERE e.job_id = :job_id AND e.relayed_at IS NULL ORDER BY e.seq LIMIT :n",
        {"job_id": job_id, "n": limit},
    )


async def mark_relayed(conn: Connection, job_id: str, last_seq: int) -> None:
    """Mark the job's events up to ``last_seq`` relayed."""
    await conn.execute(
        "UPDATE events SET relayed_at = clock_timestamp()"
        " WHERE job_id = :job_id AND seq <= :last AND relayed_at IS NULL",
        {"job_id": job_id, "last": last_seq},
    )
