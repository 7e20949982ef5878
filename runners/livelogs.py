"""Live output lines of a running attempt, handed to a sink without ever slowing the task.

The container's reader thread offers lines (already rate-limited); they wait in a small
queue and one coroutine per attempt publishes them. When the queue is full, or the sink
is failing, lines are dropped: the task's result keeps the bounded full output anyway,
so a down streams Redis costs live lines and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

# (job_id, task_id, attempt, stream, line)
LogSink = Callable[[str, str, int, str, str], Awaitable[None]]

QUEUE_LINES = 1000
PUBLISH_TIMEOUT_SECONDS = 1.0
# After a failed publish, drop lines for this long instead of waiting on a dead server.
BACKOFF_SECONDS = 5.0


class LivePublisher:
    def __init__(self, sink: LogSink, job_id: str, task_id: str, attempt: int) -> None:
        self._sink = sink
        self._ids = (job_id, task_id, attempt)
        self._queue: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue(QUEUE_LINES)
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.ensure_future(self._publish())
        self.dropped = 0

    def offer(self, stream: str, line: str) -> None:
        """Called from the container reader thread."""
        self._loop.call_soon_threadsafe(self._put, (stream, line))

    def _put(self, item: tuple[str, str] | None) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            if item is None:  # closing with a backlog: the backlog is dropped
                self._task.cancel()
            else:
                self.dropped += 1

    def close(self) -> asyncio.Task[None]:
        """No more lines; the returned task ends once the queued ones are out (or dropped)."""
        self._loop.call_soon_threadsafe(self._put, None)
        return self._task

    async def _publish(self) -> None:
        job_id, task_id, attempt = self._ids
        resume_at = 0.0
        while (item := await self._queue.get()) is not None:
            if self._loop.time() < resume_at:
                self.dropped += 1
                continue
            try:
                await asyncio.wait_for(
                    self._sink(job_id, task_id, attempt, *item), PUBLISH_TIMEOUT_SECONDS
                )
            except Exception as exc:  # best effort by design; logged
                log.warning("live log line dropped (%s); pausing live logs", exc)
                self.dropped += 1
                resume_at = self._loop.time() + BACKOFF_SECONDS
