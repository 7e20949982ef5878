"""A job's event stream for Server-Sent Events: replay from Postgres, then live from Redis.

Event ids and ``Last-Event-ID``
    Status events are numbered per job (``seq`` 1..n, no gaps). Task log lines are not in
    Postgres; they come from the job's log stream, whose entry ids are Redis ids. An SSE
    ``id:`` is the client's cursor over both: ``<seq>`` while no log line has been sent, and
    ``<seq>/<log entry id>`` after that; every event (status or log) carries the cursor as
    it stands after that event. Resuming with ``Last-Event-ID`` therefore continues both
    the status events after ``seq`` (no gap, no duplicate, from Postgres if need be) and the
    log lines after the log entry (as far as the bounded log stream still holds them).

Delivery order
    Status events are sent strictly in ``seq`` order. Live, they are read from the job
    stream, where the notifier appends them under the entry id ``<seq>-0``; whenever the
    next entry is not ``seq + 1`` (a trimmed or emptied stream, a Redis restart) the missing
    events are read from the primary first. When the stream stays quiet for a heartbeat
    interval the primary is asked too, so even a stopped notifier only delays events.
    Log lines are interleaved by time; the terminal job event is always the last event,
    after which the response ends.

When the streams Redis fails mid-stream the response ends; the client reconnects with
``Last-Event-ID`` and gets 503 with ``Retry-After`` until the Redis is back.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from core import keys
from core.db import Databases
from core.events import (
    EVENT_COLUMNS,
    LOG_EVENT,
    TERMINAL_JOB_EVENTS,
    Row,
    render,
    seq_of,
    stream_id,
)
from core.logs import LOG_STREAM_MAXLEN

__all__ = ["BadCursor", "Cursor", "JobStream", "TokenStream", "frame", "streams_client"]

BATCH = 200
_STREAM_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
_MAX_U64 = 2**64 - 1
_MAX_SEQ = 2**63 - 1  # events.seq is a bigint


def _is_stream_id(text: str) -> bool:
    match = _STREAM_ID.fullmatch(text)
    return match is not None and all(int(part) <= _MAX_U64 for part in match.groups())


_REDIS_FAILURES = (RedisError, OSError)


def streams_client(url: str, *, block_seconds: float) -> redis.Redis:
    """A client for the streams Redis whose socket time-out outlasts an XREAD BLOCK."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=block_seconds + 10,
        health_check_interval=30,
    )


def frame(event: str, data: str, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    body = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"{head}event: {event}\n{body}\n".encode()


HEARTBEAT = b": keep-alive\n\n"


class BadCursor(ValueError):
    """A ``Last-Event-ID`` this endpoint never sent."""


@dataclass
class Cursor:
    seq: int = 0  # last status event sent
    log: str = "0-0"  # last log stream entry sent

    @classmethod
    def parse(cls, raw: str | None) -> Cursor:
        if raw is None or raw.strip() == "":
            return cls()
        seq_text, sep, log = raw.strip().partition("/")
        valid_seq = re.fullmatch(r"[0-9]{1,19}", seq_text) and int(seq_text) <= _MAX_SEQ
        if not valid_seq or (sep and not _is_stream_id(log)):
            raise BadCursor(f"not an event id of this stream: {raw[:100]!r}")
        return cls(int(seq_text), log if sep else "0-0")

    def __str__(self) -> str:
        return str(self.seq) if self.log == "0-0" else f"{self.seq}/{self.log}"


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


class JobStream:
    """One client's view of one job's events; iterate ``frames()``."""

    def __init__(
        self,
        db: Databases,
        streams: redis.Redis,
        job_id: str,
        cursor: Cursor,
        *,
        heartbeat_seconds: float,
    ) -> None:
        self.db = db
        self.streams = streams
        self.job_id = job_id
        self.cursor = cursor
        self.heartbeat_seconds = heartbeat_seconds
        self.finished = False
        self._job_key = keys.job_stream(job_id)
        self._log_key = keys.log_stream(job_id)

    # --- sources
    async def _events(self, after: int, *, upto: int | None = None, primary: bool) -> list[Row]:
        query = (
            f"SELECT {EVENT_COLUMNS} FROM events e WHERE e.job_id = :job_id AND e.seq > :after"
            + (" AND e.seq <= :upto" if upto is not None else "")
            + " ORDER BY e.seq LIMIT :n"
        )
        values: dict[str, Any] = {"job_id": self.job_id, "after": after, "n": BATCH}
        if upto is not None:
            values["upto"] = upto
        return list(await self.db.read_all(query, values, primary=primary))

    async def _logs(self, count: int = LOG_STREAM_MAXLEN) -> list[tuple[str, dict[str, str]]]:
        entries: Any = await self.streams.xrange(self._log_key, _after(self.cursor.log), "+", count)
        return [(str(i), dict(f)) for i, f in entries or []]

    # --- frames
    def _status_frame(self, seq: int, kind: str, body: str) -> bytes:
        self.cursor.seq = seq
        if kind in TERMINAL_JOB_EVENTS:
            self.finished = True
        return frame(kind, body, str(self.cursor))

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
        return frame(LOG_EVENT, json.dumps(body, separators=(",", ":")), str(self.cursor))

    async def _rows_with_logs(self, rows: list[Row]) -> AsyncIterator[bytes]:
        """Send status rows (the next ones in seq order) with the log lines that precede them."""
        logs = await self._logs() if rows else []
        for row in rows:
            seq = int(row["seq"])
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

    async def _replay(self, *, primary: bool) -> AsyncIterator[bytes]:
        while not self.finished:
            rows = await self._events(self.cursor.seq, primary=primary)
            if not rows:
                return
            async for chunk in self._rows_with_logs(rows):
                yield chunk
            if len(rows) < BATCH:
                return

    async def _already_finished(self) -> bool:
        if self.cursor.seq == 0:
            return False
        kind = await self.db.read_val(
            "SELECT type FROM events WHERE job_id = :job_id AND seq = :seq",
            {"job_id": self.job_id, "seq": self.cursor.seq},
            primary=True,
        )
        if kind is None:
            raise BadCursor(f"job {self.job_id} has no event {self.cursor.seq}")
        return kind in TERMINAL_JOB_EVENTS

    async def check(self) -> None:
        """Validate the cursor against the job; raises ``BadCursor``."""
        self.finished = await self._already_finished()

    async def frames(self) -> AsyncIterator[bytes]:
        """Every event after the cursor until the terminal one; ends on a Redis failure."""
        try:
            async for chunk in self._replay(primary=False):
                yield chunk
            last_write = time.monotonic()
            while not self.finished:
                reply = await self.streams.xread(
                    {self._job_key: stream_id(self.cursor.seq), self._log_key: self.cursor.log},
                    count=BATCH,
                    block=max(1, int(self.heartbeat_seconds * 1000)),
                )
                sent = False
                if reply:
                    async for chunk in self._live(reply):
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

    async def _live(self, reply: Any) -> AsyncIterator[bytes]:
        entries = _entries(reply)
        for entry_id, fields in entries.get(self._log_key, []):
            yield self._log_frame(entry_id, fields)
        for entry_id, fields in entries.get(self._job_key, []):
            seq = seq_of(entry_id)
            if seq <= self.cursor.seq:
                continue
            if seq > self.cursor.seq + 1:
                # A gap: the stream lost entries (trimmed, or Redis came back empty).
                while self.cursor.seq < seq - 1 and not self.finished:
                    rows = await self._events(self.cursor.seq, upto=seq - 1, primary=True)
                    if not rows:
                        break
                    async for chunk in self._rows_with_logs(rows):
                        yield chunk
            if self.finished or seq != self.cursor.seq + 1:
                return
            if fields.get("type") in TERMINAL_JOB_EVENTS:
                for log_entry in await self._logs():
                    yield self._log_frame(*log_entry)
            yield self._status_frame(seq, fields["type"], fields["event"])
            if self.finished:
                return


def _entries(reply: Any) -> dict[str, list[tuple[str, dict[str, str]]]]:
    """An XREAD reply as {stream: [(entry id, fields)]}, for RESP2 (list) and RESP3 (dict)."""
    pairs = reply.items() if isinstance(reply, dict) else reply
    return {str(name): [(str(i), dict(f)) for i, f in items] for name, items in pairs}


class TokenStream:
    """Every status event of a token's jobs, live, for dashboards (``GET /v1/events``).

    Read from the token's stream in the streams Redis; ``id:`` is the entry id there, and
    ``Last-Event-ID`` resumes after it while the (bounded) stream still holds it. Unlike a
    job's stream this feed is not backed by a Postgres replay: each event names its job and
    ``seq``, and ``GET /v1/jobs/{id}/events`` with that ``seq`` gives the complete story.
    Without ``Last-Event-ID`` it starts at the present. It never ends on its own.
    """

    def __init__(
        self,
        streams: redis.Redis,
        token_id: str,
        last_event_id: str | None,
        *,
        heartbeat_seconds: float,
    ) -> None:
        if last_event_id is not None and not _is_stream_id(last_event_id.strip()):
            raise BadCursor(f"not an event id of this stream: {last_event_id[:100]!r}")
        self.streams = streams
        self.key = keys.token_stream(token_id)
        self.cursor = last_event_id.strip() if last_event_id is not None else None
        self.heartbeat_seconds = heartbeat_seconds

    async def frames(self) -> AsyncIterator[bytes]:
        try:
            if self.cursor is None:
                # Pin "now" to a concrete id: re-sending "$" would skip whatever arrives
                # between two reads.
                newest = await self.streams.xrevrange(self.key, "+", "-", 1)
                self.cursor = str(newest[0][0]) if newest else "0-0"
            while True:
                reply = await self.streams.xread(
                    {self.key: self.cursor},
                    count=BATCH,
                    block=max(1, int(self.heartbeat_seconds * 1000)),
                )
                if not reply:
                    yield HEARTBEAT
                    continue
                for entry_id, fields in _entries(reply).get(self.key, []):
                    self.cursor = entry_id
                    yield frame(fields["type"], fields["event"], entry_id)
        except _REDIS_FAILURES:
            return
