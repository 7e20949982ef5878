"""Bounded capture of a container's stdout and stderr, and live lines at a bounded rate.

Runs in the thread that reads the engine's attach stream: whatever a task prints, the
runner keeps at most ``limit`` bytes per stream, and at most one partial line.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# A line longer than this is handed on in pieces; a task printing megabytes without a
# newline must not grow the runner's memory.
LINE_MAX_BYTES = 4096

LineSink = Callable[[str, str], None]  # (stream name, line); called from the reader thread


class Bounded:
    """The first ``limit`` bytes of a stream, and whether more was written."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._data = bytearray()
        self.truncated = False
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.limit - len(self._data)
        if room > 0:
            self._data += chunk[:room]
        if len(chunk) > max(room, 0):
            self.truncated = True

    @property
    def full(self) -> bool:
        return self.truncated

    def text(self) -> str:
        # A cut may split a multi-byte character; "replace" keeps the rest readable.
        return self._data.decode("utf-8", errors="replace")


class RateLimit:
    """A token bucket: ``rate`` events a second, bursts of up to ``rate`` (at least 1)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self.tokens = self.capacity
        self._clock = clock
        self._last = clock()
        self.dropped = 0

    def allow(self) -> bool:
        now = self._clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
        self._last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.dropped += 1
        return False


class Lines:
    """Splits a byte stream into lines for a sink, rate-limited; keeps one partial line."""

    def __init__(self, stream: str, sink: LineSink, limit: RateLimit) -> None:
        self.stream = stream
        self._sink = sink
        self._limit = limit
        self._partial = bytearray()

    def add(self, chunk: bytes) -> None:
        data = bytes(self._partial) + chunk if self._partial else chunk
        self._partial.clear()
        start = 0
        while (cut := data.find(b"\n", start)) >= 0:
            self._emit(data[start : min(cut, start + LINE_MAX_BYTES)])
            start = cut + 1
        while len(data) - start >= LINE_MAX_BYTES:
            self._emit(data[start : start + LINE_MAX_BYTES])
            start += LINE_MAX_BYTES
        self._partial += data[start:]

    def flush(self) -> None:
        if self._partial:
            self._emit(bytes(self._partial))
            self._partial.clear()

    def _emit(self, line: bytes) -> None:
        if self._limit.allow():
            self._sink(self.stream, line.decode("utf-8", errors="replace"))
