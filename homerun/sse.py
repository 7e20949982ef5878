"""A Server-Sent Events parser for the client side (the WHATWG ``text/event-stream`` rules).

Kept free of any HTTP library so the CLI, the tests and anyone scripting against the API can
feed it bytes (``lines``) or lines from whatever transport they use. Written here rather
than taken from httpx-sse because that one dispatches events whose data buffer is empty,
which the standard says must not be dispatched.

The rules it follows (https://html.spec.whatwg.org/multipage/server-sent-events.html):

- the stream is UTF-8 (invalid bytes become U+FFFD) and lines end at CRLF, LF or CR only:
  not at the other characters ``str.splitlines`` (and so httpx's ``iter_lines``) breaks
  on, such as U+2028 or U+0085, which may sit inside a data line;
- a blank line dispatches the event, unless its data buffer is empty: then the data and
  event type buffers are reset and nothing is dispatched (a lone ``event:`` or ``id:``
  line makes no event);
- the last event ID persists across events until an ``id:`` field changes it (an empty
  ``id:`` clears it; a value containing NUL is ignored), and the reconnection time set by
  ``retry:`` (ASCII digits only) persists likewise;
- each ``data:`` line adds a line to the data; one space after the colon is dropped; a
  line without a colon is a field with an empty value; lines starting with ``:`` are
  comments; unknown fields are ignored; a byte order mark opening the stream is dropped.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["Event", "Parser", "lines", "parse"]

_BOM = "\ufeff"
_EOL = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Event:
    event: str  # the ``event:`` field; "message" when absent
    data: str
    # The last event ID when this event was dispatched: the latest ``id:`` field of the
    # stream so far, not necessarily this event's own. None while it is empty.
    id: str | None
    retry: int | None = None  # the reconnection time (ms) the stream last set, if any

    def json(self) -> Any:
        return json.loads(self.data)


class Parser:
    """Feed lines one at a time; ``feed`` returns an event when a blank line completes one.

    One parser per stream. ``last_event_id`` is where a reconnection resumes from (what
    the client sent as ``Last-Event-ID``): the id events carry until the stream sets one.
    """

    def __init__(self, last_event_id: str | None = None) -> None:
        self.last_event_id = last_event_id or ""
        self.retry: int | None = None
        self._data: list[str] = []
        self._event = ""
        self._started = False

    def feed(self, raw: str) -> Event | None:
        line = raw.rstrip("\r\n")
        if not self._started:
            self._started = True
            line = line.removeprefix(_BOM)
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: the server's heartbeat
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self.retry = int(value)
        return None

    def _dispatch(self) -> Event | None:
        data, self._data = self._data, []
        event, self._event = self._event, ""
        if not data:
            return None
        return Event(event or "message", "\n".join(data), self.last_event_id or None, self.retry)


def lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """The lines of a stream of bytes, without their endings; an unended last line is dropped
    (it cannot complete an event)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    for chunk in chunks:
        # Only the new text (and a CR just before it) can hold a line ending.
        scan = max(0, len(pending) - 1)
        pending += decoder.decode(chunk)
        start = 0
        for match in _EOL.finditer(pending, scan):
            if match.group() == "\r" and match.end() == len(pending):
                break  # perhaps the first half of a CRLF split between chunks
            yield pending[start : match.start()]
            start = match.end()
        pending = pending[start:]
    pending += decoder.decode(b"", final=True)
    if pending.endswith("\r"):  # the stream's last line, ended by a lone CR
        yield pending[:-1]


def parse(lines: Iterable[str], last_event_id: str | None = None) -> Iterator[Event]:
    """Yield each event of a stream of lines (with or without their line endings)."""
    parser = Parser(last_event_id)
    for line in lines:
        event = parser.feed(line)
        if event is not None:
            yield event
