"""The API process's open SSE streams: how many, whose, and ending them.

A live stream holds a connection of the streams Redis for as long as it is open (it sits
in ``XREAD BLOCK``). Unbounded, one token's 200 open streams took every connection of the
process's pool and every other token's live events answered 503; and a token revoked
while its streams were open went on hearing events. So each API process:

- admits at most ``sse_streams_per_token`` streams of one token (429) and
  ``sse_streams_per_process`` in all (503: another replica may have room); the streams
  Redis pool is sized from the latter, so streams can never take the connections that
  pings and replays need;
- ends, within ``sse_revocation_check_seconds``, every open stream of a token that has
  been revoked (one query per period for all of them, however many are open).

A client that goes away ends its stream at once: Starlette cancels the response when the
server reports the disconnect, and the stream's slot is given back in ``finally``.

The caps are per process (per API replica): they protect each process's capacity, with no
shared counter that a crashed replica could leave taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import anyio
from databases import Database
from starlette.responses import Response, StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from core import metrics
from core.errors import ApiError

__all__ = ["LiveStreams"]

log = logging.getLogger(__name__)

_REVOKED = "SELECT id FROM tokens WHERE id = ANY(CAST(:ids AS uuid[])) AND revoked_at IS NOT NULL"


@dataclass(eq=False)  # kept in a set, by identity
class _Stream:
    token_id: str
    ended: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class LiveStreams:
    per_token: int
    per_process: int
    retry_after_seconds: int
    _open: set[_Stream] = field(default_factory=set)

    @property
    def count(self) -> int:
        return len(self._open)

    def admit(self, token_id: str) -> _Stream:
        """A slot for one more stream of ``token_id``, or the 429/503 that says why not."""
        retry = {"Retry-After": str(self.retry_after_seconds)}
        if sum(1 for s in self._open if s.token_id == token_id) >= self.per_token:
            metrics.SSE_REFUSED.labels("token").inc()
            raise ApiError(
                429,
                "too_many_streams",
                f"this token already has {self.per_token} live streams open on this server"
                " (HOMERUN_SSE_STREAMS_PER_TOKEN); close one first",
                headers=retry,
            )
        if len(self._open) >= self.per_process:
            metrics.SSE_REFUSED.labels("process").inc()
            raise ApiError(
                503,
                "unavailable",
                f"this server holds its maximum of {self.per_process} live streams"
                " (HOMERUN_SSE_STREAMS_PER_PROCESS); retry shortly",
                headers=retry,
            )
        stream = _Stream(token_id)
        self._open.add(stream)
        metrics.SSE_OPEN.inc()
        return stream

    def release(self, stream: _Stream) -> None:
        if stream in self._open:
            self._open.discard(stream)
            metrics.SSE_OPEN.dec()

    def response(
        self, stream: _Stream, frames: AsyncIterator[bytes], headers: Mapping[str, str]
    ) -> Response:
        """The streaming response of an admitted stream; its slot is freed when it ends."""
        return _LiveResponse(self, stream, frames, headers)

    def end_token(self, token_id: str) -> int:
        """End every open stream of ``token_id``; how many there were."""
        ending = [s for s in self._open if s.token_id == token_id]
        for stream in ending:
            stream.ended.set()
        return len(ending)

    async def end_revoked(self, db: Database) -> int:
        """End the streams of every token revoked since it opened them."""
        tokens = Counter(s.token_id for s in self._open)
        if not tokens:
            return 0
        rows = await db.fetch_all(_REVOKED, {"ids": list(tokens)})
        ended = 0
        for row in rows:
            ended += self.end_token(str(row["id"]))
        if ended:
            log.info("ended %d live streams of %d revoked tokens", ended, len(rows))
        return ended

    async def watch_revocations(self, db: Database, period_seconds: float) -> None:
        """Run ``end_revoked`` every period, for the life of the process."""
        while True:
            await asyncio.sleep(max(period_seconds, 0.1))  # 0 must not spin
            try:
                await self.end_revoked(db)
            except Exception as exc:  # the primary may be down: try again next period
                log.warning("checking open streams' tokens failed: %s", exc)


class _LiveResponse(StreamingResponse):
    """An SSE response that also ends when its stream is ended (its token revoked).

    The same mechanism Starlette uses for a client's disconnect: the response runs in a
    task group that is cancelled, here by the stream's ``ended`` event. The chunked body
    is then closed properly, so the client sees the stream end rather than a broken one.
    """

    def __init__(
        self,
        streams: LiveStreams,
        stream: _Stream,
        frames: AsyncIterator[bytes],
        headers: Mapping[str, str],
    ) -> None:
        super().__init__(frames, media_type="text/event-stream", headers=headers)
        self._streams = streams
        self._stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        ended_early = False
        try:
            async with anyio.create_task_group() as group:

                async def until_ended() -> None:
                    nonlocal ended_early
                    await self._stream.ended.wait()
                    ended_early = True
                    group.cancel_scope.cancel()

                group.start_soon(until_ended)
                await super().__call__(scope, receive, tracking_send)
                group.cancel_scope.cancel()
            if ended_early and started:
                with contextlib.suppress(OSError):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self._streams.release(self._stream)
