"""Cron times in a zone (cronsim + zoneinfo), the daylight-saving counts, and catch-up plans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.cron import Cron, CronError, plan
from wire.schedules import Catchup

BERLIN = ZoneInfo("Europe/Berlin")


def local_day(year: int, month: int, day: int) -> tuple[datetime, datetime]:
    start = datetime(year, month, day, tzinfo=BERLIN).astimezone(UTC)
    end = datetime(year, month, day, tzinfo=BERLIN) + timedelta(days=1)
    return start, end.astimezone(UTC)


def ticks_on(cron: Cron, year: int, month: int, day: int) -> list[datetime]:
    start, end = local_day(year, month, day)
    ticks, complete = cron.due(start, end - timedelta(microseconds=1), 10_000)
    assert complete
    return ticks


# 2026: clocks go forward on Sunday 29 March (02:00 -> 03:00) and back on Sunday 25 October
# (03:00 -> 02:00) in Europe/Berlin.
@pytest.mark.parametrize(
    ("expression", "spring", "autumn", "ordinary"),
    [
        ("0 * * * *", 23, 25, 24),  # real hours: the day is 23 or 25 hours long
        ("*/30 * * * *", 46, 50, 48),
        ("30 2 * * *", 1, 1, 1),  # a fixed wall time fires once, even when it is missing or twice
        ("0 3 * * *", 1, 1, 1),
        ("@daily", 1, 1, 1),
    ],
)
def test_berlin_daylight_saving_counts(
    expression: str, spring: int, autumn: int, ordinary: int
) -> None:
    cron = Cron.parse(expression, "Europe/Berlin")
    assert len(ticks_on(cron, 2026, 3, 29)) == spring
    assert len(ticks_on(cron, 2026, 10, 25)) == autumn
    assert len(ticks_on(cron, 2026, 6, 1)) == ordinary


def test_a_missing_wall_time_fires_at_the_first_minute_that_exists() -> None:
    (spring,) = ticks_on(Cron.parse("30 2 * * *", "Europe/Berlin"), 2026, 3, 29)
    assert spring.astimezone(BERLIN).strftime("%H:%M %Z") == "03:00 CEST"
    (autumn,) = ticks_on(Cron.parse("30 2 * * *", "Europe/Berlin"), 2026, 10, 25)
    assert autumn.astimezone(BERLIN).strftime("%H:%M %Z") == "02:30 CEST"  # the first 02:30


def test_ticks_are_strictly_increasing_through_the_repeated_hour() -> None:
    cron = Cron.parse("*/15 * * * *", "Europe/Berlin")
    ticks = ticks_on(cron, 2026, 10, 25)
    assert ticks == sorted(set(ticks)) and len(ticks) == 25 * 4


@pytest.mark.parametrize(
    ("alias", "fields"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@ANNUALLY", "0 0 1 1 *"),
    ],
)
def test_aliases(alias: str, fields: str) -> None:
    assert Cron.parse(alias, "UTC").fields == fields


def test_next_fire_times_in_utc() -> None:
    cron = Cron.parse("0 9 * * 1-5", "America/New_York")
    start = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)  # a Friday, 07:00 in New York
    assert [t.isoformat() for t in cron.upcoming(start, 3)] == [
        "2026-12-04T14:00:00+00:00",
        "2026-12-07T14:00:00+00:00",
        "2026-12-08T14:00:00+00:00",
    ]


def test_six_fields_have_seconds_first() -> None:
    cron = Cron.parse("*/2 * * * * *", "UTC")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert [t.second for t in cron.upcoming(start, 3)] == [2, 4, 6]


@pytest.mark.parametrize(
    ("expression", "timezone", "field", "words"),
    [
        ("61 * * * *", "UTC", "cron", "Bad minute"),
        ("* 25 * * *", "UTC", "cron", "Bad hour"),
        ("* * * * 8", "UTC", "cron", "Bad day-of-week"),
        ("* * * 13 *", "UTC", "cron", "Bad month"),
        ("* * *", "UTC", "cron", "expected 5 fields"),
        ("@fortnightly", "UTC", "cron", "unknown alias"),
        ("* * * * *", "Mars/Olympus", "timezone", "unknown IANA time zone"),
        ("* * * * *", "../../etc/passwd", "timezone", "unknown IANA time zone"),
        ("* * * * *", "", "timezone", "unknown IANA time zone"),
        ("* * * * *", "Europe", "timezone", "unknown IANA time zone"),  # a directory
        ("* * * * *", "a" * 300, "timezone", "unknown IANA time zone"),  # too long to open
    ],
)
def test_invalid_names_the_field(expression: str, timezone: str, field: str, words: str) -> None:
    with pytest.raises(CronError) as caught:
        Cron.parse(expression, timezone)
    assert caught.value.field == field and words in str(caught.value)


T0 = datetime(2026, 1, 1, tzinfo=UTC)
# Ticks every 2 s from T0; "now" is 31 s later: 15 ticks are missed, the one at T0+32 not due.
DUE = [T0 + timedelta(seconds=2 * i) for i in range(16)]
NOW = T0 + timedelta(seconds=31)


def runs(catchup: Catchup, catchup_max: int = 10, complete: bool = True) -> list[datetime]:
    planned = plan(
        DUE, NOW, catchup=catchup, late_seconds=0.5, catchup_max=catchup_max, complete=complete
    )
    assert [p.at for p in planned] == DUE
    assert all(p.reason for p in planned if not p.run)
    return [p.at for p in planned if p.run]


def test_catchup_policies() -> None:
    assert runs(Catchup.NONE) == []
    assert runs(Catchup.LATEST) == [DUE[-1]]
    assert runs(Catchup.ALL, catchup_max=5) == DUE[-5:]
    assert runs(Catchup.ALL, catchup_max=100) == DUE
    assert runs(Catchup.ALL, catchup_max=0) == []
    # Not the present yet: a later tick is due, so none of these is the latest.
    assert runs(Catchup.LATEST, complete=False) == []


def test_a_tick_found_in_time_runs_whatever_the_policy() -> None:
    planned = plan(
        DUE[-1:],
        DUE[-1] + timedelta(seconds=0.2),
        catchup=Catchup.NONE,
        late_seconds=0.5,
        catchup_max=0,
    )
    assert [p.run for p in planned] == [True]
