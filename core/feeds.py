"""Event feeds for Server-Sent Events: replay from Postgres, then live from Redis.

Two feeds share one machinery (``_Feed``): a job's (``GET /v1/jobs/{id}/events``) and a
token's (``GET /v1/events``, every job of the token). Both carry status events numbered in
commit order with no gap — ``seq`` within the job, ``token_seq`` within the token (see
``core.outbox``) — that the notifier appends to the job's or the token's stream under the
entry id ``<number>-0``.

Delivery order
    Status events are sent strictly in number order. A feed first replays the events after
    its cursor from Postgres (the replica, with the primary behind it), then reads its
    stream with ``XREAD BLOCK``. Whenever the next entry is not ``number + 1`` (a trimmed or
    emptied stream, a Redis restart, or on a token stream an event that reached it after a
    later one of another job) the missing events are read from the primary first: a lagging
    replica must not cause a skip. When the stream stays quiet for a heartbeat interval the
    primary is asked too, so even a stopped notifier only delays events.

A job's feed: ids, logs, end
    Task log lines are not in Postgres; they come from the job's log stream, whose entry
    ids are Redis ids. An SSE ``id:`` is the client's cursor over both: ``<seq>`` while no
    log line has been sent, and ``<seq>/<log entry id>`` after that; every event (status or
    log) carries the cursor as it stands after that event. Resuming with ``Last-Event-ID``
    therefore continues both the status events after ``seq`` (no gap, no duplicate, from
    Postgres if need be) and the log lines after the log entry (as far as the bounded log
    stream still holds them). Log lines are interleaved by time; the terminal job event is
    always the last event, after which the response ends.

A token's feed: ids, start, no end
    ``id:`` is the event's ``token_seq``, and ``Last-Event-ID`` resumes right after it.
    Without a cursor the feed starts at the present (the token's latest number, read on the
    primary). It never ends on its own and carries no log lines.

When the streams Redis fails mid-stream the response ends; the client reconnects with
``Last-Event-ID`` and gets 503 with ``Retry-After`` until the Redis is back.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import redis.asyncio as redis
from redis.exceptions import RedisError
from redis.typing import KeyT, StreamIdT

from core import keys
from core.db import Databases
from core.events import (
    TERMINAL_JOB_EVENTS,
    EventType,
    Row,
    render,
    seq_of,
    stream_id,
)
from core.logstream import LOG_STREAM_MAXLEN
from core.store import events as event_store

__all__ = [
    "BadCursor",
    "Cursor",
    "JobStream",
    "TokenCursor",
    "TokenStream",
    "frame",
    "streams_client",
]

BATCH = 200
_STREAM_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
_SEQ = re.compile(r"[0-9]{1,19}")
_MAX_U64 = 2**64 - 1
_MAX_SEQ = 2**63 - 1  # events.seq and events.token_seq are bigints


def _is_stream_id(text: str) -> bool:
    match = _STREAM_ID.fullmatch(text)
    return match is not None and all(int(part) <= _MAX_U64 for part in match.groups())


_REDIS_FAILURES = (RedisError, OSError)


# Connections beyond one per admitted stream: pings, replays' XRANGEs, a stream being let go.
POOL_MARGIN = 16


def streams_client(url: str, *, block_seconds: float, max_streams: int) -> redis.Redis:
    """A client for the streams Redis whose socket time-out outlasts an XREAD BLOCK.

    Its pool is bounded (``max_streams`` plus a margin; see ``core.livestreams``): a
    request that finds it empty waits a moment, then fails (503), instead of opening
    connections until the Redis or the process runs out.
    """
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_streams + POOL_MARGIN,
        timeout=2,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=block_seconds + 10,
        health_check_interval=30,
    )
    # from_pool: the client owns the pool, so aclose() closes its connections too (a pool
    # passed as connection_pool= would be left open, its sockets to the garbage collector).
    return redis.Redis.from_pool(pool)


def frame(event: str, data: str, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    body = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"{head}event: {event}\n{body}\n".encode()


HEARTBEAT = b": keep-alive\n\n"


class BadCursor(ValueError):
    """A ``Last-Event-ID`` this endpoint never sent."""


def _parse_seq(text: str, raw: str) -> int:
    if not _SEQ.fullmatch(text) or int(text) > _MAX_SEQ:
        raise BadCursor(f"not an event id of this stream: {raw[:100]!r}")
    return int(text)


@dataclass
class Cursor:
    """Where a client stands in a job's feed."""

    seq: int = 0  # last status event sent
    log: str = "0-0"  # last log stream entry sent

    @classmethod
    def parse(cls, raw: str | None) -> Cursor:
        if raw is None or raw.strip() == "":
            return cls()
        seq_text, sep, log = raw.strip().partition("/")
        seq = _parse_seq(seq_text, raw)
        if sep and not _is_stream_id(log):
            raise BadCursor(f"not an event id of this stream: {raw[:100]!r}")
        return cls(seq, log if sep else "0-0")

    def __str__(self) -> str:
        return str(self.seq) if self.log == "0-0" else f"{self.seq}/{self.log}"


@dataclass
class TokenCursor:
    """Where a client stands in a token's feed."""

    seq: int = 0  # token_seq of the last event sent

    @classmethod
    def parse(cls, raw: str) -> TokenCursor:
        return cls(_parse_seq(raw.strip(), raw))

    def __str__(self) -> str:
        return str(self.seq)


class _Position(Protocol):
    seq: int  # the number of the last status event sent

    def __str__(self) -> str: ...


C = TypeVar("C", bound=_Position)


class _Read(Protocol):
    """Reads an owner's status events numbered after ``after`` (``core.store.events``)."""

    async def __call__(
        self,
        db: Databases,
        owner: str,
        after: int,
        /,
        *,
        upto: int | None,
        limit: int,
        primary: bool,
    ) -> Sequence[Row]: ...


@dataclass(frozen=True)
class _Source:
    """Whose status events a feed carries, and the stream the notifier appends them to."""

    read: _Read  # numbered without gaps, as ``feed_seq``
    owner: str
    key: str

    @classmethod
    def job(cls, job_id: str) -> _Source:
        return cls(event_store.job_feed, job_id, keys.job_stream(job_id))

    @classmethod
    def token(cls, token_id: str) -> _Source:
        return cls(event_store.token_feed, token_id, keys.token_stream(token_id))


def _entries(reply: Any) -> dict[str, list[tuple[str, dict[str, str]]]]:
    """An XREAD reply as {stream: [(entry id, fields)]}, for RESP2 (list) and RESP3 (dict)."""
    pairs = reply.items() if isinstance(reply, dict) else reply
    return {str(name): [(str(i), dict(f)) for i, f in items] for name, items in pairs}


class _Feed(Generic[C]):
    """One client's view of one source's status events; iterate ``frames()``.

    Subclasses add what else their feed carries by overriding the hooks ``_status_frame``,
    ``_rows``, ``_entry``, ``_reads`` and ``_live``, and end it by setting ``finished``.
    """

    def __init__(
        self,
        db: Databases,
        streams: redis.Redis,
        source: _Source,
        cursor: C,
        *,
        heartbeat_seconds: float,
    ) -> None:
        self.db = db
        self.streams = streams
        self.source = source
        self.cursor = cursor
        self.heartbeat_seconds = heartbeat_seconds
        self.finished = False

    # Whether the source's numbering may have holes: a token's does once retention deleted
    # some of its jobs (notifier/retention.py); a job's never (a job goes as a whole).
    # Committed events are numbered in commit order, so an event Postgres lacks below one it
    # has is deleted, never still to come: the feed steps over it.
    holes = False

    async def _events(self, after: int, *, upto: int | None = None, primary: bool) -> list[Row]:
        """The source's status events numbered after ``after`` (up to ``upto``), in order."""
        rows = await self.source.read(
            self.db, self.source.owner, after, upto=upto, limit=BATCH, primary=primary
        )
        return list(rows)

    # --- hooks
    def _status_frame(self, seq: int, kind: str, body: str) -> bytes:
        self.cursor.seq = seq
        return frame(kind, body, str(self.cursor))

    async def _rows(self, rows: list[Row]) -> AsyncIterator[bytes]:
        """Send status rows from Postgres: the ones that are next in order."""
        for row in rows:
            seq = int(row["feed_seq"])
            # else already sent (a replay racing the stream)
            if seq == self.cursor.seq + 1 or (self.holes and seq > self.cursor.seq):
                yield self._status_frame(seq, row["type"], render(row))

    async def _entry(self, seq: int, fields: dict[str, str]) -> AsyncIterator[bytes]:
        """Send the stream entry that is the next status event."""
        yield self._status_frame(seq, fields["type"], fields["event"])

    def _reads(self) -> dict[KeyT, StreamIdT]:
        """The streams to XREAD, each with the entry id to read after."""
        return {self.source.key: stream_id(self.cursor.seq)}

    # --- the machinery
    async def _replay(self, *, primary: bool) -> AsyncIterator[bytes]:
        while not self.finished:
            rows = await self._events(self.cursor.seq, primary=primary)
            if not rows:
                return
            async for chunk in self._rows(rows):
                yield chunk
            if len(rows) < BATCH:
                return

    async def frames(self) -> AsyncIterator[bytes]:
        """Every event after the cursor, until ``finished``; ends on a Redis failure."""
        try:
            async for chunk in self._replay(primary=False):
                yield chunk
            last_write = time.monotonic()
            while not self.finished:
                reply = await self.streams.xread(
                    self._reads(),
                    count=BATCH,
                    block=max(1, int(self.heartbeat_seconds * 1000)),
                )
                sent = False
                if reply:
                    async for chunk in self._live(_entries(reply)):
                        sent = True
                        yield chunk
                else:
                    # Quiet: ask the primary in case the notifier is behind or Redis lost
                    # what it had; else keep proxies from timing out the connection.
                    async for chunk in self._replay(primary=True):
                        sent = True
                        yield chunk
                if sent:
                    last_write = time.monotonic()
                elif time.monotonic() - last_write >= self.heartbeat_seconds * 0.9:
                    last_write = time.monotonic()
                    yield HEARTBEAT
        except _REDIS_FAILURES:
            # The client reconnects with Last-Event-ID and hears 503 until Redis is back.
            return

    async def _live(
        self, entries: dict[str, list[tuple[str, dict[str, str]]]]
    ) -> AsyncIterator[bytes]:
        for entry_id, fields in entries.get(self.source.key, []):
            seq = seq_of(entry_id)
            if seq <= self.cursor.seq:
                continue
            if seq > self.cursor.seq + 1:
                # A gap: the stream lacks entries (trimmed, Redis came back empty, or on a
                # token stream passed by a later event), but they are committed.
                while self.cursor.seq < seq - 1 and not self.finished:
                    rows = await self._events(self.cursor.seq, upto=seq - 1, primary=True)
                    if not rows:
                        break
                    async for chunk in self._rows(rows):
                        yield chunk
                if self.holes and not self.finished and self.cursor.seq < seq - 1:
                    self.cursor.seq = seq - 1  # the primary has none of them: deleted
            if self.finished or seq != self.cursor.seq + 1:
                return
            async for chunk in self._entry(seq, fields):
                yield chunk
            if self.finished:
                return


class JobStream(_Feed[Cursor]):
    """A job's status events and log lines, from the start to its terminal event."""

    def __init__(
        self,
        db: Databases,
        streams: redis.Redis,
        job_id: str,
        cursor: Cursor,
        *,
        heartbeat_seconds: float,
    ) -> None:
        super().__init__(
            db, streams, _Source.job(job_id), cursor, heartbeat_seconds=heartbeat_seconds
        )
        self.job_id = job_id
        self._log_key = keys.log_stream(job_id)

    async def _logs(self, count: int = LOG_STREAM_MAXLEN) -> list[tuple[str, dict[str, str]]]:
        entries: Any = await self.streams.xrange(self._log_key, _after(self.cursor.log), "+", count)
        return [(str(i), dict(f)) for i, f in entries or []]

    def _log_frame(self, entry_id: str, fields: dict[str, str]) -> bytes:
        self.cursor.log = entry_id
        body = {
            "job_id": self.job_id,
            "task_id": fields.get("task_id"),
            "attempt": int(fields.get("attempt") or 0),
            "stream": fields.get("stream"),
            "line": fields.get("line", ""),
            "truncated": fields.get("truncated") == "1",
            "ts": _log_ts(entry_id, fields),
        }
        return frame(EventType.TASK_LOG, json.dumps(body, separators=(",", ":")), str(self.cursor))

    # --- hooks
    def _status_frame(self, seq: int, kind: str, body: str) -> bytes:
        if kind in TERMINAL_JOB_EVENTS:
            self.finished = True
        return super()._status_frame(seq, kind, body)

    async def _rows(self, rows: list[Row]) -> AsyncIterator[bytes]:
        """Send status rows (the next ones in seq order) with the log lines that precede them."""
        logs = await self._logs() if rows else []
        for row in rows:
            seq = int(row["feed_seq"])
            if seq != self.cursor.seq + 1:
                continue  # already sent (a replay racing the live stream)
            terminal = row["type"] in TERMINAL_JOB_EVENTS
            when = row["created_at"].timestamp()
            while logs and (terminal or _log_ts(*logs[0]) < when):
                yield self._log_frame(*logs.pop(0))
            yield self._status_frame(seq, row["type"], render(row))
            if self.finished:
                return
        for entry in logs:
            yield self._log_frame(*entry)

    async def _entry(self, seq: int, fields: dict[str, str]) -> AsyncIterator[bytes]:
        if fields.get("type") in TERMINAL_JOB_EVENTS:
            for log_entry in await self._logs():
                yield self._log_frame(*log_entry)
        async for chunk in super()._entry(seq, fields):
            yield chunk

    def _reads(self) -> dict[KeyT, StreamIdT]:
        return {**super()._reads(), self._log_key: self.cursor.log}

    async def _live(
        self, entries: dict[str, list[tuple[str, dict[str, str]]]]
    ) -> AsyncIterator[bytes]:
        for entry_id, fields in entries.get(self._log_key, []):
            yield self._log_frame(entry_id, fields)
        async for chunk in super()._live(entries):
            yield chunk

    async def check(self) -> None:
        """Validate the cursor against the job; raises ``BadCursor``."""
        if self.cursor.seq == 0:
            return
        kind = await event_store.event_type_at(self.db, self.job_id, self.cursor.seq)
        if kind is None:
            raise BadCursor(f"job {self.job_id} has no event {self.cursor.seq}")
        self.finished = kind in TERMINAL_JOB_EVENTS


class TokenStream(_Feed[TokenCursor]):
    """Every status event of a token's jobs (``GET /v1/events``); never ends on its own."""

    holes = True

    def __init__(
        self,
        db: Databases,
        streams: redis.Redis,
        token_id: str,
        cursor: TokenCursor | None,
        *,
        heartbeat_seconds: float,
    ) -> None:
        super().__init__(
            db,
            streams,
            _Source.token(token_id),
            cursor or TokenCursor(),
            heartbeat_seconds=heartbeat_seconds,
        )
        self.token_id = token_id
        self._from_present = cursor is None

    async def check(self) -> None:
        """Place a missing cursor at the present, or validate it; raises ``BadCursor``."""
        latest = await event_store.latest_token_seq(self.db, self.token_id)
        if self._from_present:
            self.cursor.seq = latest
        elif self.cursor.seq > latest:
            raise BadCursor(f"this token has no event {self.cursor.seq} yet")


def _log_time(entry_id: str) -> float:
    return int(entry_id.split("-", 1)[0]) / 1000


def _log_ts(entry_id: str, fields: dict[str, str]) -> float:
    """When a line was printed: the publisher's clock (µs), else the entry id's (ms)."""
    try:
        return float(fields["ts"])
    except (KeyError, ValueError):
        return _log_time(entry_id)


def _after(entry_id: str) -> str:
    """The exclusive XRANGE start just after ``entry_id``."""
    return "(" + entry_id
