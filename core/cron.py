"""A schedule's times: its cron expression in its time zone, and which due ticks run.

Cron is cronsim's (see ARCHITECTURE.md, "Libraries chosen"): no cron parsing of our own
beyond naming the ``@hourly``-style aliases. Zones are ``zoneinfo``'s. Ticks are reckoned
in the schedule's zone and stored in UTC.

Daylight saving, as Debian cron (and so cronsim) does it, for a 5-field expression with a
fixed minute and hour (``30 2 * * *``): a local time that does not exist (spring forward)
fires at the first minute that does (03:00 in Europe/Berlin), and one that happens twice
(fall back) fires once, the first time. An expression whose hour is a wildcard or a step
(``0 * * * *``) follows real time instead: 23 hourly ticks on the spring-forward day and
25 on the fall-back day.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from cronsim import CronSim, CronSimError

from wire.schedules import Catchup

__all__ = ["ALIASES", "Cron", "CronError", "PlannedTick", "plan"]

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


class CronError(ValueError):
    """An expression or zone that cannot be used; ``field`` is ``cron`` or ``timezone``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Cron:
    expression: str  # as given (an alias stays an alias)
    fields: str  # what cronsim reads
    zone: ZoneInfo

    @classmethod
    def parse(cls, expression: str, timezone: str) -> Cron:
        """5 fields (or 6, seconds first, as cronsim reads them) or an alias, in an IANA zone."""
        fields = ALIASES.get(expression.strip().lower(), expression.strip())
        if fields.startswith("@"):
            known = ", ".join(ALIASES)
            raise CronError("cron", f"unknown alias {expression!r} (one of {known})")
        count = len(fields.split())
        if count not in (5, 6):
            raise CronError(
                "cron",
                f"expected 5 fields (minute hour day-of-month month day-of-week), got {count}",
            )
        if timezone not in _zones():
            # Checked against the list, not by opening: ZoneInfo("Europe") or an overlong
            # name fails with an OSError rather than saying the zone is unknown.
            raise CronError("timezone", f"unknown IANA time zone {timezone[:100]!r}")
        zone = ZoneInfo(timezone)
        try:
            CronSim(fields, datetime.now(zone))
        except CronSimError as exc:
            # cronsim names the field: "Bad minute", "Bad day-of-week", ...
            raise CronError("cron", f"{exc} in {expression!r}") from None
        return cls(expression, fields, zone)

    def after(self, moment: datetime) -> Iterator[datetime]:
        """The ticks strictly after ``moment``, in UTC, in order."""
        local = moment.astimezone(self.zone)
        last = moment
        try:
            for tick in CronSim(self.fields, local):
                at = tick.astimezone(UTC)
                # cronsim restarts from wall time: in a repeated hour it can name a tick
                # before the instant it started from.
                if at > last:
                    last = at
                    yield at
        except (StopIteration, RuntimeError):  # no further match within cronsim's 50 years
            return

    def next_after(self, moment: datetime) -> datetime:
        for tick in self.after(moment):
            return tick
        return moment + timedelta(days=365 * 100)  # never again: parked far in the future

    def upcoming(self, moment: datetime, count: int) -> list[datetime]:
        ticks: list[datetime] = []
        for tick in self.after(moment):
            ticks.append(tick)
            if len(ticks) == count:
                break
        return ticks

    def due(self, first: datetime, now: datetime, limit: int) -> tuple[list[datetime], bool]:
        """The ticks from ``first`` (inclusive) to ``now`` (inclusive), at most ``limit``;
        and whether they reach ``now`` (False: more are due after the last one)."""
        ticks: list[datetime] = []
        for tick in self.after(first - timedelta(microseconds=1)):
            if tick > now:
                return ticks, True
            if len(ticks) == limit:
                return ticks, False
            ticks.append(tick)
        return ticks, True


@dataclass(frozen=True)
class PlannedTick:
    at: datetime
    run: bool
    reason: str | None = None  # why a tick that does not run is skipped


def plan(
    due: Sequence[datetime],
    now: datetime,
    *,
    catchup: Catchup,
    late_seconds: float,
    catchup_max: int,
    complete: bool = True,
) -> list[PlannedTick]:
    """Which of the due ticks run, by the catch-up policy.

    A tick found more than ``late_seconds`` after its time was missed (the schedulers were
    down, or busy): ``none`` runs no missed tick, ``latest`` only the most recent one,
    ``all`` the most recent ``catchup_max``. A tick found in time always runs. When the due
    ticks do not reach ``now`` (``complete`` False: more than one pass can take), they are
    all older than the ones still to come, so none of them is the latest.
    """
    late = timedelta(seconds=late_seconds)
    missed = [t for t in due if now - t > late]
    runs: set[datetime] = {t for t in due if now - t <= late}
    reason = "missed (catchup none)"
    if not complete:
        reason = "missed (a later tick is due)"
    elif catchup is Catchup.LATEST and missed:
        runs.add(missed[-1])
        reason = "missed (catchup latest: a later tick ran)"
    elif catchup is Catchup.ALL:
        runs.update(missed[-catchup_max:] if catchup_max > 0 else [])
        reason = f"missed (beyond the catch-up limit of {catchup_max})"
    return [PlannedTick(t, True) if t in runs else PlannedTick(t, False, reason) for t in due]
