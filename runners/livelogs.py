"""Live output lines of a running attempt, handed to a sink without ever slowing the task.

The container's reader thread offers lines (already rate-limited); they wait in a bounded
buffer and one coroutine per attempt sends them, in batches, in the order printed. When the
sink fails (the streams Redis is down or full), the lines stay in the buffer and the
coroutine tries again with backoff, so a watcher who replays the job after the outage sees
every line. Each line is numbered, and the sink skips numbers it already took
(``core.logstream.publish_logs``), so resending a batch whose answer was lost doubles
nothing.

Bounds: at most ``BUFFER_LINES`` lines wait (newer ones are counted and dropped beyond
that; the task's result keeps the bounded full output anyway), and after the attempt ends
the coroutine keeps trying for ``DRAIN_SECONDS`` before it gives the rest up. A runner that
stops drops what is still waiting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from itertools import islice

from core.backoff import Backoff
from core.logstream import LogLine

log = logging.getLogger(__name__)

# (job_id, task_id, attempt, lines)
LogSink = Callable[[str, str, int, Sequence[LogLine]], Awaitable[object]]

BUFFER_LINES = 10_000
BATCH_LINES = 200
PUBLISH_TIMEOUT_SECONDS = 1.0
# Retry pauses while the sink fails: 0.2 s doubling to 5 s.
RETRY_BASE_SECONDS = 0.2
RETRY_MAX_SECONDS = 5.0
# How long lines of an ended attempt may wait for the sink to come back.
DRAIN_SECONDS = 300.0


class LivePublisher:
    def __init__(
        self,
        sink: LogSink,
        job_id: str,
        task_id: str,
        attempt: int,
        *,
        buffer_lines: int = BUFFER_LINES,
        drain_seconds: float = DRAIN_SECONDS,
    ) -> None:
        self._sink = sink
        self._ids = (job_id, task_id, attempt)
        self._buffer: deque[LogLine] = deque()
        self._buffer_lines = buffer_lines
        self._drain_seconds = drain_seconds
        self._seq = 0
        self._closed_at: float | None = None
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.ensure_future(self._publish())
        self.dropped = 0
        self.sent = 0

    def offer(self, stream: str, line: str) -> None:
        """Called from the container reader thread."""
        printed = time.time()
        self._loop.call_soon_threadsafe(self._put, stream, line, printed)

    def _put(self, stream: str, line: str, printed: float) -> None:
        # Numbered here, on the loop, so the numbers follow the order lines were queued in
        # even when stdout and stderr are read by different threads.
        if len(self._buffer) >= self._buffer_lines:
            self.dropped += 1
            return
        self._seq += 1
        self._buffer.append(LogLine(self._seq, stream, line, printed))
        self._wake.set()

    def close(self) -> asyncio.Task[None]:
        """No more lines; the returned task ends once the buffered ones are out (or given up)."""

        def closing() -> None:
            self._closed_at = self._loop.time()
            self._wake.set()

        self._loop.call_soon_threadsafe(closing)
        return self._task

    async def _publish(self) -> None:
        job_id, task_id, attempt = self._ids
        backoff = Backoff(RETRY_BASE_SECONDS, RETRY_MAX_SECONDS, jitter=0.5)
        while True:
            if not self._buffer:
                if self._closed_at is not None:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = list(islice(self._buffer, BATCH_LINES))
            try:
                await asyncio.wait_for(
                    self._sink(job_id, task_id, attempt, batch), PUBLISH_TIMEOUT_SECONDS
                )
            except Exception as exc:  # the sink is best effort; we hold the lines and retry
                if backoff.failures == 0:
                    log.warning("live log lines held for task %s: %s", task_id, exc)
                if self._closed_at is not None and (
                    self._loop.time() - self._closed_at > self._drain_seconds
                ):
                    self.dropped += len(self._buffer)
                    self._buffer.clear()
                    log.warning("live log lines of task %s given up", task_id)
                    return
                await asyncio.sleep(backoff.failed())
                continue
            if backoff.failures:
                log.info("live log lines of task %s flowing again", task_id)
            backoff.reset()
            for _ in batch:
                self._buffer.popleft()
            self.sent += len(batch)
