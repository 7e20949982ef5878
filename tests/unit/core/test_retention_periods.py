"""A token's retention period as the CLI reads it (``homerun token retention``)."""

from __future__ import annotations

import pytest

from core.tokens import MAX_RETENTION_SECONDS, parse_retention
from stack.topology import StackConfig, build_topology


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("default", None),
        ("forever", 0),
        ("0", 0),
        ("3600", 3600),
        ("45s", 45),
        ("90m", 5400),
        ("12h", 43200),
        ("30d", 2592000),
        (" 7D ", 604800),
    ],
)
def test_periods(text: str, seconds: int | None) -> None:
    assert parse_retention(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "d", "-1d", "1.5h", "1w", "soon", f"{MAX_RETENTION_SECONDS + 1}"]
)
def test_what_is_not_a_period(text: str) -> None:
    with pytest.raises(ValueError):
        parse_retention(text)


def test_the_stack_hands_the_period_to_the_notifier() -> None:
    topology = build_topology(StackConfig(retention_seconds=86400))
    assert topology.service("notifier").env["HOMERUN_RETENTION_SECONDS"] == "86400"
    assert "HOMERUN_RETENTION_SECONDS" not in topology.service("api").env
    with pytest.raises(ValueError, match="retention_seconds"):
        StackConfig(retention_seconds=-1)
