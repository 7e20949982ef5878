"""Event types: one enum, the documented wire values, and the terminal ones derived from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.events import TERMINAL_JOB_EVENTS, EventType
from core.models import JobStatus

EVENTS_MD = Path(__file__).resolve().parents[3] / "docs" / "events.md"


def documented_types() -> set[str]:
    """The types in the first column of docs/events.md's "Event types" table."""
    section = EVENTS_MD.read_text().split("## Event types", 1)[1].split("\n## ", 1)[0]
    first_cells = re.findall(r"^\| ([^|]+) \|", section, flags=re.MULTILINE)
    return {name for cell in first_cells for name in re.findall(r"`([a-z]+\.[a-z]+)`", cell)}


def test_the_reference_lists_exactly_the_event_types() -> None:
    assert documented_types() == {t.value for t in EventType}


def test_a_type_read_back_as_a_string_is_the_member() -> None:
    assert EventType("task.retrying") is EventType.TASK_RETRYING
    assert "job.failed" in TERMINAL_JOB_EVENTS and "task.failed" not in TERMINAL_JOB_EVENTS
    assert f"{EventType.TASK_LOG}" == "task.log"


def test_terminal_job_events_follow_the_terminal_statuses() -> None:
    assert TERMINAL_JOB_EVENTS == {
        EventType.JOB_SUCCEEDED,
        EventType.JOB_FAILED,
        EventType.JOB_CANCELLED,
    }
    assert EventType.job_ended(JobStatus.CANCELLED) is EventType.JOB_CANCELLED
    with pytest.raises(ValueError, match="not terminal"):
        EventType.job_ended(JobStatus.RUNNING)
