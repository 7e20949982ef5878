"""A schedule's ticks: claimed, and their jobs created, in one transaction.

Exactly one job per tick, with any number of schedulers, restarts and kill -9: a tick is
claimed by inserting its ``schedule_ticks`` row (``ON CONFLICT DO NOTHING``; the primary
key is the schedule and the tick) in the transaction that then creates its job through
``create_job``'s own statements (``insert_job``). The loser of a race inserts nothing and
creates nothing; a scheduler killed before its commit leaves neither, and the tick is due
again for the next one. The schedule's row is locked (``FOR NO KEY UPDATE``) for the whole
pass, so the overlap check of one tick sees the job of the tick before it, and schedulers
pass over a schedule another one is busy with (``SKIP LOCKED``) instead of queueing.

Lock order: the schedule row, then (``replace``) its jobs' rows, then their tasks'.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from databases import Database
from databases.core import Connection

from core.cron import Cron, CronError, plan
from core.errors import UNAVAILABLE_ERRORS, ApiError
from core.models import TERMINAL_JOB
from core.transitions.cancellation import cancel_in
from core.transitions.submission import insert_job
from core.transitions.types import NewJob, ReadyTask
from wire.schedules import Catchup, Overlap, TickOutcome

Validate = Callable[[Any], NewJob]

# How far a schedule whose cron no longer parses is pushed back.
PARKED = timedelta(days=365 * 100)

_TERMINAL = ", ".join(f"'{s.value}'" for s in sorted(TERMINAL_JOB))
_SCHEDULE_COLUMNS = "id, token_id, cron, timezone, job, overlap, catchup, paused, next_tick"


@dataclass(frozen=True)
class Fired:
    tick: datetime
    outcome: TickOutcome
    reason: str | None = None
    job_id: str | None = None


@dataclass
class Pass:
    """What one schedule's pass did, and what the caller must do after the commit."""

    schedule_id: str
    ticks: list[Fired] = field(default_factory=list)
    ready: list[ReadyTask] = field(default_factory=list)
    cancel_running: list[tuple[str, int]] = field(default_factory=list)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def _record_skip(
    conn: Connection, schedule_id: str, tick: datetime, reason: str, *, manual: bool = False
) -> bool:
    claimed = await conn.fetch_val(
        "INSERT INTO schedule_ticks (schedule_id, tick, outcome, reason, manual)"
        " VALUES (:s, :t, :skipped, :reason, :manual) ON CONFLICT DO NOTHING RETURNING true",
        {
            "s": schedule_id,
            "t": tick,
            "skipped": TickOutcome.SKIPPED.value,
            "reason": reason,
            "manual": manual,
        },
    )
    return bool(claimed)


async def _fire(
    conn: Connection,
    schedule: Any,
    tick: datetime,
    validate: Validate,
    out: Pass,
    *,
    manual: bool = False,
) -> Fired | None:
    """Claim ``tick`` and create its job (or record why not); None if it was claimed before."""
    schedule_id = str(schedule["id"])
    job_id = str(uuid.uuid4())
    claimed = await conn.fetch_val(
        "INSERT INTO schedule_ticks (schedule_id, tick, outcome, manual, job_id)"
        " VALUES (:s, :t, :created, :manual, :job) ON CONFLICT DO NOTHING RETURNING true",
        {
            "s": schedule_id,
            "t": tick,
            "created": TickOutcome.CREATED.value,
            "manual": manual,
            "job": job_id,
        },
    )
    if not claimed:
        return None

    async def skip(reason: str) -> Fired:
        await conn.execute(
            "UPDATE schedule_ticks SET outcome = :skipped, reason = :reason, job_id = NULL"
            " WHERE schedule_id = :s AND tick = :t",
            {"skipped": TickOutcome.SKIPPED.value, "reason": reason, "s": schedule_id, "t": tick},
        )
        return Fired(tick, TickOutcome.SKIPPED, reason)

    try:
        # Validated again, as a re-run is: a task type may have gone since the schedule
        # was made, or the operator's limits changed.
        job = validate(_json(schedule["job"]))
    except ApiError as exc:
        if manual:
            raise
        return await skip(f"invalid: {exc.message}")
    if not manual and Overlap(schedule["overlap"]) is not Overlap.ALLOW:
        unfinished = await conn.fetch_all(
            "SELECT id FROM jobs WHERE schedule_id = :s AND status NOT IN"
            f" ({_TERMINAL}) ORDER BY created_at, id",
            {"s": schedule_id},
        )
        if unfinished and Overlap(schedule["overlap"]) is Overlap.FORBID:
            return await skip(f"forbid: job {unfinished[-1]['id']} has not finished")
        for row in unfinished:  # replace
            after = await cancel_in(conn, str(row["id"]))
            out.cancel_running += after.cancel_running
    created = await insert_job(
        conn,
        replace(job, schedule_id=schedule_id, scheduled_for=tick),
        token_id=str(schedule["token_id"]),
        job_id=job_id,
    )
    out.ready += created.ready
    return Fired(tick, TickOutcome.CREATED, job_id=created.job_id)


async def advance_due(
    db: Database,
    *,
    now: datetime,
    validate: Validate,
    late_seconds: float,
    catchup_max: int,
    max_ticks: int,
    passed_over: Collection[str] = (),
) -> Pass | None:
    """Deal with the due ticks of one due schedule no other scheduler holds; None if none.

    Ticks up to ``now`` (the caller's clock) are due. A paused schedule's ticks are
    recorded as skipped. At most ``max_ticks`` ticks are looked at in one pass; the rest
    are due for the next. The schedules in ``passed_over`` are left alone. A statement
    Postgres refuses during the pass raises ``PassFailed`` naming the schedule, so the
    caller can pass it over for a while instead of retrying it before every other one.
    """
    async with db.connection() as conn, conn.transaction():
        schedule = await conn.fetch_one(
            f"SELECT {_SCHEDULE_COLUMNS} FROM schedules WHERE next_tick <= :now"
            " AND NOT (id = ANY(CAST(:passed_over AS uuid[])))"
            " ORDER BY next_tick LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED",
            {"now": now, "passed_over": list(passed_over)},
        )
        if schedule is None:
            return None
        try:
            return await _advance(
                conn,
                schedule,
                now=now,
                validate=validate,
                late_seconds=late_seconds,
                catchup_max=catchup_max,
                max_ticks=max_ticks,
            )
        except UNAVAILABLE_ERRORS:
            raise  # the database, not this schedule: the caller backs off
        except asyncpg.PostgresError as exc:
            raise PassFailed(str(schedule["id"])) from exc


class PassFailed(Exception):
    """Postgres refused a statement of a schedule's pass (rolled back)."""

    def __init__(self, schedule_id: str) -> None:
        super().__init__(f"the pass over schedule {schedule_id} failed")
        self.schedule_id = schedule_id


async def _advance(
    conn: Connection,
    schedule: Any,
    *,
    now: datetime,
    validate: Validate,
    late_seconds: float,
    catchup_max: int,
    max_ticks: int,
) -> Pass:
    schedule_id = str(schedule["id"])
    out = Pass(schedule_id)
    try:
        cron = Cron.parse(schedule["cron"], schedule["timezone"])
    except CronError as exc:
        # Valid when stored; a zone can still vanish from a later tzdata. Parked, not
        # retried in a loop: PATCH a new cron or zone to wake it.
        await conn.execute(
            "UPDATE schedules SET next_tick = :parked WHERE id = :s",
            {"parked": now + PARKED, "s": schedule_id},
        )
        out.ticks.append(Fired(now, TickOutcome.SKIPPED, f"invalid {exc.field}: {exc}"))
        return out
    due, complete = cron.due(schedule["next_tick"], now, max_ticks)
    planned = plan(
        due,
        now,
        catchup=Catchup(schedule["catchup"]),
        late_seconds=late_seconds,
        catchup_max=catchup_max,
        complete=complete,
    )
    for tick in planned:
        fired: Fired | None
        if not tick.run or schedule["paused"]:
            reason = "paused" if schedule["paused"] else tick.reason or "skipped"
            recorded = await _record_skip(conn, schedule_id, tick.at, reason)
            fired = Fired(tick.at, TickOutcome.SKIPPED, reason) if recorded else None
        else:
            fired = await _fire(conn, schedule, tick.at, validate, out)
        if fired is not None:
            out.ticks.append(fired)
    next_tick = cron.next_after(due[-1] if due and not complete else now)
    await conn.execute(
        "UPDATE schedules SET next_tick = :next WHERE id = :s",
        {"next": next_tick, "s": schedule_id},
    )
    return out


async def trigger(
    db: Database, *, schedule_id: str, token_id: str, at: datetime, validate: Validate
) -> tuple[Pass, Fired] | None:
    """A job now, recorded as a manual tick at ``at``; None if no such schedule of the token.

    The overlap policy does not apply (the job was asked for), nor does ``paused``. An
    invalid body raises the ``ApiError`` a submission would get, and nothing is recorded.
    """
    async with db.connection() as conn, conn.transaction():
        schedule = await conn.fetch_one(
            f"SELECT {_SCHEDULE_COLUMNS} FROM schedules WHERE id = :s AND token_id = :token"
            " FOR NO KEY UPDATE",
            {"s": schedule_id, "token": token_id},
        )
        if schedule is None:
            return None
        out = Pass(schedule_id)
        fired = await _fire(conn, schedule, at, validate, out, manual=True)
        if fired is None:
            raise TickTaken(at)
        out.ticks.append(fired)
    return out, fired


class TickTaken(Exception):
    """A manual tick landed on the very microsecond of a tick already recorded."""

    def __init__(self, at: datetime) -> None:
        super().__init__(f"a tick at {at.isoformat()} is already recorded")
