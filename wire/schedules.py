"""Schedules: a job body fired on a cron, and the ticks it fired or skipped."""

from __future__ import annotations

import enum
from typing import Annotated, Any

import msgspec

from wire.codec import Timestamp, Uuid

__all__ = ["Catchup", "Overlap", "Schedule", "SchedulePage", "Tick", "TickOutcome"]


class Overlap(enum.StrEnum):
    """What a tick does while the schedule's previous job has not finished."""

    ALLOW = "allow"  # run anyway
    FORBID = "forbid"  # skip the tick (recorded)
    REPLACE = "replace"  # cancel the unfinished job, then run


class Catchup(enum.StrEnum):
    """Which missed ticks (found late: the schedulers were down) still run."""

    NONE = "none"
    LATEST = "latest"
    ALL = "all"  # bounded by HOMERUN_SCHEDULE_CATCHUP_MAX


class TickOutcome(enum.StrEnum):
    CREATED = "created"
    SKIPPED = "skipped"


class Tick(msgspec.Struct, kw_only=True):
    """One tick a scheduler dealt with."""

    tick: Annotated[Timestamp, msgspec.Meta(description="The cron time (or the trigger's).")]
    outcome: TickOutcome
    reason: Annotated[
        str | None, msgspec.Meta(description="Why it was skipped (forbid, paused, missed).")
    ]
    manual: Annotated[bool, msgspec.Meta(description="Fired by POST .../trigger.")]
    job_id: Uuid | None


class Schedule(msgspec.Struct, kw_only=True):
    id: Uuid
    name: str
    cron: str
    timezone: str
    job: Annotated[dict[str, Any], msgspec.Meta(description="The POST /v1/jobs body it fires.")]
    overlap: Overlap
    catchup: Catchup
    paused: bool
    next_fire_times: Annotated[
        list[Timestamp],
        msgspec.Meta(description="The next 5 cron times (whether paused or not)."),
    ]
    recent_ticks: Annotated[
        list[Tick],
        msgspec.Meta(description="The newest ticks (at most 20), newest first."),
    ]
    created_at: Timestamp
    updated_at: Timestamp


class SchedulePage(msgspec.Struct, kw_only=True):
    schedules: list[Schedule]
    next_cursor: str | None
