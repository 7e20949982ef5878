"""Webhook receivers that attack the notifier (issue 12 item 9), on loopback, bounded.

- A receiver that drips its answer a byte at a time: httpx's timeout is per read, so each
  delivery to it held a webhook worker (and its row lock) for as long as the receiver
  liked; as many drippers as workers stalled every token's webhooks.
- A gzip bomb: a small compressed body that httpx decoded into memory in full.

The receivers are asyncio servers in this event loop; each stops by itself after a
bounded number of bytes, so a notifier that never hangs up cannot make the test run on.
"""

from __future__ import annotations

import asyncio
import contextlib
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace

import pytest
from databases import Database

from core import transitions as tr
from core.settings import Settings
from notifier.service import WEBHOOK_WORKERS
from tests.conftest import eventually, free_port
from tests.integration.events.harness import make_token, notifiers, ok, run_task

pytestmark = pytest.mark.integration

DEADLINE_SECONDS = 1.0  # HOMERUN_WEBHOOK_TIMEOUT_SECONDS for these tests
DRIP_INTERVAL_SECONDS = 0.01  # the attack's pace: well inside any per-read timeout
DRIP_MAX_BYTES = 3000  # 30 s of dripping at most, far past the deadline
BOMB_DECODED_BYTES = 128 * 1024 * 1024


@dataclass
class Visit:
    """One connection to a hostile receiver: what it sent, whether the client hung up."""

    sent: int = 0
    hung_up: bool = False


@dataclass
class Receiver:
    port: int
    visits: list[Visit] = field(default_factory=list)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


Answer = Callable[[asyncio.StreamWriter, Visit, "asyncio.Task[bytes]"], Awaitable[None]]


@contextlib.asynccontextmanager
async def receiver(answer: Answer) -> AsyncIterator[Receiver]:
    """An HTTP/1.1 server on loopback that reads each request, then lets ``answer`` write
    the response; ``answer`` is handed a task that completes when the client hangs up."""
    state = Receiver(port=free_port())

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        visit = Visit()
        state.visits.append(visit)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            gone = asyncio.ensure_future(reader.read())  # b"" once the client closes
            try:
                await answer(writer, visit, gone)
            finally:
                gone.cancel()
        except (ConnectionError, asyncio.IncompleteReadError):
            visit.hung_up = True
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", state.port)
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()


async def drip(writer: asyncio.StreamWriter, visit: Visit, gone: asyncio.Task[bytes]) -> None:
    """A status line, then a body promised long and sent a byte at a time."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n")
    await drip_bytes(writer, visit, gone)


async def drip_headers(
    writer: asyncio.StreamWriter, visit: Visit, gone: asyncio.Task[bytes]
) -> None:
    """A status line, then a header that never ends: the answer is never complete."""
    writer.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    await drip_bytes(writer, visit, gone)


async def drip_bytes(writer: asyncio.StreamWriter, visit: Visit, gone: asyncio.Task[bytes]) -> None:
    while visit.sent < DRIP_MAX_BYTES:
        if gone.done():
            visit.hung_up = True
            return
        writer.write(b"x")
        await writer.drain()
        visit.sent += 1
        await asyncio.sleep(DRIP_INTERVAL_SECONDS)


def gzip_bomb(decoded_bytes: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip format
    zeros = bytes(1024 * 1024)
    parts = [packer.compress(zeros) for _ in range(decoded_bytes // len(zeros))]
    return b"".join(parts) + packer.flush()


async def one_job_with_webhook(db: Database, token_id: str, url: str) -> str:
    created = await tr.create_job(
        db,
        tr.NewJob(callback_url=url, tasks=[tr.NewTask("only", "shell", {"script": "true"})]),
        token_id=token_id,
    )
    await run_task(db, created.job_id, "only", outcome=ok())
    return created.job_id


async def delivery(db: Database, job_id: str) -> dict[str, object]:
    row = await db.fetch_one(
        "SELECT status, attempts, last_error FROM webhook_deliveries WHERE job_id = :j",
        {"j": job_id},
    )
    return {} if row is None else dict(row._mapping)


@pytest.fixture
def hostile_settings(settings: Settings) -> Settings:
    return replace(settings, webhook_timeout_seconds=DEADLINE_SECONDS, webhook_max_attempts=1)


@pytest.mark.parametrize("answer", [drip, drip_headers], ids=["body", "headers"])
async def test_dripping_receivers_cannot_hold_the_webhook_workers(
    answer: Answer, db: Database, hostile_settings: Settings
) -> None:
    token = await make_token(db)

    async def honest(writer: asyncio.StreamWriter, visit: Visit, gone: asyncio.Task[bytes]) -> None:
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()

    async with (
        receiver(answer) as dripper,
        receiver(honest) as good,
        notifiers(hostile_settings) as _,
    ):
        # One dripper per worker: before the fix every worker was held, for good.
        dripped = [
            await one_job_with_webhook(db, token.id, dripper.url(f"/drip/{n}"))
            for n in range(WEBHOOK_WORKERS)
        ]
        await eventually(
            lambda: len(dripper.visits) == WEBHOOK_WORKERS, 15, "every worker to be dripped on"
        )
        fine = await one_job_with_webhook(db, token.id, good.url())

        async def delivered() -> bool:
            return (await delivery(db, fine)).get("status") == "delivered"

        # Another receiver's webhook goes out while the drippers drip: the workers came back.
        await eventually(delivered, 15, "the honest receiver's webhook")

        async def all_failed() -> bool:
            found = [await delivery(db, job_id) for job_id in dripped]
            return all(d.get("status") == "failed" for d in found)

        await eventually(all_failed, 15, "every dripped delivery to end")
    for job_id in dripped:
        assert (await delivery(db, job_id))["last_error"] == (
            f"the receiver did not answer within {DEADLINE_SECONDS:g} s"
            " (HOMERUN_WEBHOOK_TIMEOUT_SECONDS)"
        )
    # The notifier hung up on each dripper long before the dripper ran out of bytes.
    assert all(v.hung_up and v.sent < DRIP_MAX_BYTES for v in dripper.visits), dripper.visits
    assert len(good.visits) == 1


async def test_a_gzip_bomb_answer_is_never_decoded(
    db: Database, hostile_settings: Settings
) -> None:
    bomb = gzip_bomb(BOMB_DECODED_BYTES)
    assert len(bomb) < BOMB_DECODED_BYTES // 500  # a few hundred KiB that decode to 128 MiB

    async def explode(
        writer: asyncio.StreamWriter, visit: Visit, gone: asyncio.Task[bytes]
    ) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            b"Content-Length: %d\r\n\r\n" % len(bomb)
        )
        writer.write(bomb)
        visit.sent = len(bomb)
        with contextlib.suppress(ConnectionError):
            await writer.drain()

    token = await make_token(db)
    tracemalloc.start()
    try:
        async with receiver(explode) as bomber, notifiers(hostile_settings):
            tracemalloc.reset_peak()
            job_id = await one_job_with_webhook(db, token.id, bomber.url())

            async def ended() -> dict[str, object] | None:
                found = await delivery(db, job_id)
                return found if found.get("status") not in (None, "pending") else None

            found = await eventually(ended, 15, "the delivery to end")
            _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Only the status counts, and 200 is a success; the body was never inflated: the
    # process never held more than a sliver of what it decodes to.
    assert found["status"] == "delivered"
    assert peak < 16 * 1024 * 1024, f"peak {peak} bytes while the bomb was answered"
    assert len(bomber.visits) == 1
