"""Relay the ``events`` outbox from Postgres to the streams Redis, per job, in order, once.

Exclusivity: a notifier relays a job only while it holds a transaction-scoped advisory
lock on that job (``core.store.events.lock_job_for_relay``), so two replicas never
interleave one job's events. It reads the job's unrelayed events in ``seq`` order, appends
them in one Lua call, marks them relayed, and commits (which releases the lock). The SQL is
in ``core.store.events``.

Idempotence: each event goes to the job stream under the explicit ID ``<seq>-0`` and to
the token stream under ``<token_seq>-0``. A notifier that died after appending but before
committing leaves the events unrelayed in Postgres; whoever relays them next gets "ID equal
or smaller" from each stream, and the script then skips that append, so nothing is doubled.
Redis remembers a stream's last ID after trimming, so this holds for a trimmed stream too.

The token stream is shared by all of a token's jobs, which different notifiers relay at
the same time: an event can reach it after a later one of another job. The stream refuses
it like a repeat, and readers of the token stream fill that gap in ``token_seq`` from
Postgres. (Per job nothing is ever refused that way: one notifier at a time, in order.)

An emptied Redis (restart without persistence) takes the next events as if new; the events
it lost are in Postgres, and the SSE endpoints fill any gap in the numbers from there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as redis
from databases import Database
from databases.interfaces import Record

from core import keys
from core.events import TERMINAL_JOB_EVENTS, render, stream_id
from core.store import events as event_store
from core.store import webhooks as webhook_store

__all__ = ["Relay", "Relayed"]

BATCH = 500

# KEYS: job stream, token stream, log stream, the log stream's line numbers.
# ARGV: maxlen, ttl after the job ended, token stream ttl, then 5 values per event:
#       job stream entry id, token stream entry id, type, rendered event, "1" if terminal.
# "equal or smaller" means "already there, or passed by": skip that append. Stops at the
# first other error so a job's events never land out of order.
_RELAY_LUA = """
local maxlen, ttl, token_ttl = ARGV[1], ARGV[2], ARGV[3]
local function append(key, id, kind, body)
  local r = redis.pcall('XADD', key, 'MAXLEN', '~', maxlen, id, 'type', kind, 'event', body)
  if type(r) == 'table' and r.err then
    if not string.find(r.err, 'equal or smaller', 1, true) then
      error(r)
    end
    return 0
  end
  return 1
end
local added, token_added = 0, 0
for i = 4, #ARGV, 5 do
  local kind, body = ARGV[i + 2], ARGV[i + 3]
  added = added + append(KEYS[1], ARGV[i], kind, body)
  token_added = token_added + append(KEYS[2], ARGV[i + 1], kind, body)
  if ARGV[i + 4] == '1' then
    redis.call('EXPIRE', KEYS[1], ttl)
    redis.call('EXPIRE', KEYS[3], ttl)
    redis.call('EXPIRE', KEYS[4], ttl)
  end
end
if token_added > 0 then
  redis.call('EXPIRE', KEYS[2], token_ttl)
end
return added
"""


@dataclass(frozen=True)
class Relayed:
    locked: bool  # False: another notifier holds this job right now
    events: int = 0  # events marked relayed
    appended: int = 0  # of those, appended now (the rest were there already)
    more: bool = False  # a full batch: call again
    scheduled: int = 0  # webhook deliveries created in the same transaction


class Relay:
    def __init__(
        self,
        db: Database,
        streams: redis.Redis,
        *,
        maxlen: int,
        ttl_seconds: int,
    ) -> None:
        self.db = db
        self.streams = streams
        self.maxlen = maxlen
        self.ttl_seconds = ttl_seconds
        self._script = streams.register_script(_RELAY_LUA)

    async def pending_jobs(self, limit: int = 100) -> list[str]:
        """Jobs with unrelayed events, the longest-waiting first."""
        return await event_store.pending_jobs(self.db, limit)

    async def relay_job(self, job_id: str) -> Relayed:
        """Relay one batch of the job's unrelayed events; raises ``redis.RedisError``."""
        async with self.db.connection() as conn, conn.transaction():
            if not await event_store.lock_job_for_relay(conn, job_id):
                return Relayed(locked=False)
            rows = await event_store.unrelayed(conn, job_id, BATCH)
            if not rows:
                return Relayed(locked=True)
            # In this transaction, so that no terminal event is marked relayed without its
            # webhook delivery existing (the notifier's sweep covers Redis outages).
            # Only this batch is marked relayed, so a batch without a terminal event (most
            # of them) has nothing to schedule and skips the query.
            scheduled = 0
            if any(row["type"] in TERMINAL_JOB_EVENTS for row in rows):
                scheduled = await webhook_store.schedule(conn, job_id)
            appended = await self._append(job_id, str(rows[0]["token_id"]), rows)
            await event_store.mark_relayed(conn, job_id, int(rows[-1]["seq"]))
        return Relayed(
            locked=True,
            events=len(rows),
            appended=appended,
            more=len(rows) == BATCH,
            scheduled=scheduled,
        )

    async def _append(self, job_id: str, token_id: str, rows: Sequence[Record]) -> int:
        args: list[str | int] = [self.maxlen, self.ttl_seconds, self.ttl_seconds]
        for row in rows:
            args += [
                stream_id(int(row["seq"])),
                stream_id(int(row["token_seq"])),
                row["type"],
                render(row),
                "1" if row["type"] in TERMINAL_JOB_EVENTS else "0",
            ]
        added = await self._script(
            keys=[
                keys.job_stream(job_id),
                keys.token_stream(token_id),
                keys.log_stream(job_id),
                keys.log_seqs(job_id),
            ],
            args=args,
        )
        return int(added)
