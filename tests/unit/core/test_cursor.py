"""Pagination cursors round-trip and refuse anything else."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import pytest

from core.cursor import decode_cursor, encode_cursor


def test_round_trip_keeps_microseconds() -> None:
    when = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    job_id = str(uuid.uuid4())
    cursor = encode_cursor(when, job_id)
    assert "=" not in cursor and decode_cursor(cursor) == (when, job_id)


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not-a-cursor",
        "é",
        base64.urlsafe_b64encode(b'["2025-01-01T00:00:00+00:00"]').decode(),
        base64.urlsafe_b64encode(b'["2025-01-01T00:00:00+00:00", "x"]').decode(),
        base64.urlsafe_b64encode(b'["yesterday", "' + str(uuid.uuid4()).encode() + b'"]').decode(),
        base64.urlsafe_b64encode(
            b'["2025-01-01T00:00:00", "' + str(uuid.uuid4()).encode() + b'"]'
        ).decode(),
        base64.urlsafe_b64encode(b'{"a": 1, "b": 2}').decode(),
    ],
)
def test_garbage_is_refused(cursor: str) -> None:
    with pytest.raises(ValueError, match="not a valid cursor"):
        decode_cursor(cursor)
