"""The SSE wire format on both ends: the server's frames and cursor, the client's parser."""

from __future__ import annotations

import pytest

from core.feeds import BadCursor, Cursor, frame
from homerun import sse


@pytest.mark.parametrize(
    ("raw", "seq", "log"),
    [
        (None, 0, "0-0"),
        ("", 0, "0-0"),
        ("7", 7, "0-0"),
        ("7/1700000000000-3", 7, "1700000000000-3"),
    ],
)
def test_cursor_round_trip(raw: str | None, seq: int, log: str) -> None:
    cursor = Cursor.parse(raw)
    assert (cursor.seq, cursor.log) == (seq, log)
    assert str(cursor) == (raw or "0")


@pytest.mark.parametrize(
    "raw",
    ["x", "-1", "7/", "7/abc", "7/1-2-3", "1.5", "²", "7/1-²", str(2**63), "7/1-" + str(2**64)],
)
def test_cursor_rejects_ids_it_never_sent(raw: str) -> None:
    with pytest.raises(BadCursor):
        Cursor.parse(raw)


def test_frames_parse_back_to_the_same_events() -> None:
    wire = (
        frame("job.queued", '{"seq":1}', "1")
        + b": keep-alive\n\n"
        + frame("task.log", "two\nlines", "1/5-0")
        + frame("note", "no id")
    ).decode()
    events = list(sse.parse(wire.split("\n")))
    assert events == [
        sse.Event("job.queued", '{"seq":1}', "1"),
        sse.Event("task.log", "two\nlines", "1/5-0"),
        sse.Event("note", "no id", None),
    ]
    assert events[0].json() == {"seq": 1}


def test_parser_follows_the_whatwg_rules() -> None:
    lines = ["retry: 1500", "data:no space", "data:  two spaces", "id: 9", "", "event: x", "", ""]
    events = list(sse.parse(lines))
    assert events == [
        sse.Event("message", "no space\n two spaces", "9", 1500),
        sse.Event("x", "", None),
    ]
