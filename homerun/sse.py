"""A Server-Sent Events parser for the client side (the WHATWG ``text/event-stream`` rules).

Kept free of any HTTP library so the CLI, the tests and anyone scripting against the API can
feed it lines from whatever transport they use.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["Event", "Parser", "parse"]


@dataclass(frozen=True)
class Event:
    event: str  # the ``event:`` field; "message" when absent
    data: str
    id: str | None  # the ``id:`` field of this event, None when it carried none
    retry: int | None = None

    def json(self) -> Any:
        return json.loads(self.data)


class Parser:
    """Feed lines one at a time; ``feed`` returns an event when a blank line completes one."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, raw: str) -> Event | None:
        line = raw.rstrip("\r\n")
        if line == "":
            event = None
            if self._data or self._event:
                event = Event(
                    self._event or "message", "\n".join(self._data), self._id, self._retry
                )
            self._reset()
            return event
        if line.startswith(":"):
            return None  # a comment: the server's heartbeat
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None


def parse(lines: Iterable[str]) -> Iterator[Event]:
    """Yield each event of a stream of lines (with or without their line endings)."""
    parser = Parser()
    for line in lines:
        event = parser.feed(line)
        if event is not None:
            yield event
