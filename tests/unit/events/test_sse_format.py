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
        # A frame without an id keeps the stream's last event id (WHATWG).
        sse.Event("note", "no id", "1/5-0"),
    ]
    assert events[0].json() == {"seq": 1}


def test_parser_follows_the_whatwg_rules() -> None:
    lines = ["retry: 1500", "data:no space", "data:  two spaces", "id: 9", "", "event: x", "", ""]
    events = list(sse.parse(lines))
    # "event: x" alone leaves the data buffer empty: nothing is dispatched for it.
    assert events == [sse.Event("message", "no space\n two spaces", "9", 1500)]


def test_the_last_event_id_persists_until_a_field_changes_it() -> None:
    lines = [
        *("id: 1", "data: a", ""),
        *("data: b", ""),  # no id field: still 1
        *("id: 2", "data: c", ""),
        *("id: 3\0x", "data: d", ""),  # an id with NUL is ignored: still 2
        *("id", "data: e", ""),  # an empty id clears it
        *("data: f", ""),
    ]
    assert [(e.data, e.id) for e in sse.parse(lines)] == [
        ("a", "1"),
        ("b", "1"),
        ("c", "2"),
        ("d", "2"),
        ("e", None),
        ("f", None),
    ]


def test_a_resumed_stream_starts_from_the_id_the_client_sent() -> None:
    events = list(sse.parse(["data: x", "", "id: 8", "data: y", ""], last_event_id="7"))
    assert [(e.data, e.id) for e in events] == [("x", "7"), ("y", "8")]


def test_an_event_with_an_empty_data_buffer_is_not_dispatched() -> None:
    lines = [
        *("event: lonely", ""),  # type only
        *("id: 5", ""),  # id only: no event, but the id is kept
        *("retry: 10", ""),  # retry only: no event, but the time is kept
        *(": a comment", ""),
        *("data", ""),  # a data field with an empty value IS data: dispatched
    ]
    assert list(sse.parse(lines)) == [sse.Event("message", "", "5", 10)]


def test_the_event_type_is_reset_after_every_block() -> None:
    lines = ["event: a", "data: 1", "", "data: 2", "", "event: b", "", "data: 3", ""]
    assert [(e.event, e.data) for e in sse.parse(lines)] == [
        ("a", "1"),
        ("message", "2"),
        ("message", "3"),  # the type "b" went with its empty block
    ]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["\ufeffdata: bom", ""], "bom"),  # a byte order mark opening the stream
        (["data:x", ""], "x"),
        (["data:  x", ""], " x"),  # only one space is dropped
        (["data: a:b: c", ""], "a:b: c"),  # only the first colon separates
        (["data: crlf\r\n", "\r\n"], "crlf"),
        (["data: 1", "data:", "data: 3", ""], "1\n\n3"),
        (["colour: red", "data: kept", ""], "kept"),  # unknown fields are ignored
    ],
)
def test_field_lines(lines: list[str], expected: str) -> None:
    (event,) = sse.parse(lines)
    assert event.data == expected


@pytest.mark.parametrize("value", ["1.5", "-1", "²", "1 ", "", "abc"])
def test_retry_takes_ascii_digits_only(value: str) -> None:
    (event,) = sse.parse(["retry: 7", "", f"retry: {value}", "data: x", ""])
    assert event.retry == 7


@pytest.mark.parametrize(
    "chunks",
    [
        [b"data: a\r\ndata: b\rdata: c\n\n"],
        [b"data: a\r", b"\ndata: b\r", b"data: c\n", b"\n"],  # a CRLF split between chunks
        [bytes([byte]) for byte in b"data: a\r\ndata: b\rdata: c\n\n"],
    ],
)
def test_lines_end_at_crlf_lf_or_cr(chunks: list[bytes]) -> None:
    assert list(sse.lines(chunks)) == ["data: a", "data: b", "data: c", ""]


def test_lines_do_not_break_where_splitlines_would() -> None:
    # U+2028, U+0085, form feed, ...: str.splitlines (and httpx's iter_lines) split there.
    text = "data: a\u2028b\x85c\x0cd\x1ce\n\n"
    data = text.encode()
    chunks = [data[:9], data[9:10], data[10:]]  # U+2028's three bytes split across chunks
    (event,) = sse.parse(sse.lines(chunks))
    assert event.data == "a\u2028b\x85c\x0cd\x1ce"


def test_lines_decode_utf8_replacing_what_is_not() -> None:
    assert list(sse.lines([b"data: caf\xc3", b"\xa9 \xff\n"])) == ["data: café \ufffd"]


def test_an_unended_last_line_is_dropped() -> None:
    assert list(sse.lines([b"data: a\n\ndata: cut off"])) == ["data: a", ""]
    assert list(sse.lines([b"data: a\r"])) == ["data: a"]
