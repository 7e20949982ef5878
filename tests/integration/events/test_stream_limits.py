"""Live streams are bounded per token and per API process, end when the client leaves and
when the token is revoked (#12 item 5).

The attack it stops: one token opened 200 streams, each holding a connection of the
process's streams-Redis pool, and every other token's live events answered 503; streams
stayed open long after their clients had gone, and a revoked token kept hearing events.

Heartbeats are long here (30 s), so a stream that ends within seconds was ended by the
mechanism under test, not by a heartbeat write finding the socket closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from databases import Database

from core.settings import Settings
from core.tokens import revoke_token
from tests.conftest import wait_for
from tests.harness.services import ServiceProcess, Services
from tests.integration.events.harness import Token, make_token

pytestmark = pytest.mark.integration

PER_TOKEN = 3
PER_PROCESS = 5


@pytest.fixture
def api(settings: Settings, services: Services) -> ServiceProcess:
    return services.api(
        replace(
            settings,
            sse_heartbeat_seconds=30.0,
            sse_streams_per_token=PER_TOKEN,
            sse_streams_per_process=PER_PROCESS,
            sse_revocation_check_seconds=0.5,
        )
    )


def open_streams(api: ServiceProcess) -> float:
    text = httpx.get(f"{api.url}/metrics", timeout=5).text
    match = re.search(r"^homerun_sse_streams_open (\S+)$", text, re.MULTILINE)
    assert match, text
    return float(match.group(1))


class Held:
    """One open ``GET /v1/events``; with ``read``, read in a thread until the server ends it."""

    def __init__(self, api: ServiceProcess, token: Token, *, read: bool = False) -> None:
        self.client = httpx.Client(timeout=httpx.Timeout(5, read=120))
        self.response = self.client.send(
            self.client.build_request("GET", f"{api.url}/v1/events", headers=bearer(token)),
            stream=True,
        )
        self.ended = threading.Event()
        self.clean = False
        if read and self.response.status_code == 200:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for _ in self.response.iter_raw():
                pass
            self.clean = True  # the body ended as a complete chunked message
        except httpx.HTTPError:
            pass
        finally:
            self.ended.set()

    def close(self) -> None:
        """Close the connection (the reader thread must not be blocked on it: then the
        kernel defers the close until its read returns)."""
        self.response.close()
        self.client.close()


def bearer(token: Token) -> dict[str, str]:
    return {"Authorization": f"Bearer {token.plaintext}"}


@contextlib.contextmanager
def holding() -> Iterator[list[Held]]:
    held: list[Held] = []
    try:
        yield held
    finally:
        for h in held:
            h.close()


@pytest.fixture
async def tokens(db: Database) -> list[Token]:
    return [await make_token(db, f"t{i}") for i in range(3)]


def test_one_token_cannot_take_every_stream_and_a_leaving_client_frees_its_own(
    api: ServiceProcess, tokens: list[Token]
) -> None:
    greedy, other, third = tokens
    with holding() as held:
        for _ in range(PER_TOKEN):
            held.append(Held(api, greedy))
        assert [h.response.status_code for h in held] == [200] * PER_TOKEN
        refused = Held(api, greedy)
        held.append(refused)
        assert refused.response.status_code == 429
        refused.response.read()
        body = refused.response.json()
        assert body["error"]["code"] == "too_many_streams", body
        assert "HOMERUN_SSE_STREAMS_PER_TOKEN" in body["error"]["message"]
        assert refused.response.headers["Retry-After"] == str(api.settings.sse_retry_after_seconds)

        # The other tokens are still served, up to the process's own bound.
        for _ in range(PER_PROCESS - PER_TOKEN):
            held.append(Held(api, other))
            assert held[-1].response.status_code == 200
        full = Held(api, third)
        held.append(full)
        assert full.response.status_code == 503
        full.response.read()
        assert "HOMERUN_SSE_STREAMS_PER_PROCESS" in full.response.json()["error"]["message"]
        assert open_streams(api) == PER_PROCESS

        # A client that goes away gives its slot back within moments, not a heartbeat.
        # (A process that dies: its kernel closes the socket, as a client's crash would.)
        held[0].close()
        wait_for(lambda: open_streams(api) == PER_PROCESS - 1, 5, 0.1, "the slot to free")
        leaving = subprocess.Popen(
            [
                "curl",
                "-sN",
                "-H",
                f"Authorization: Bearer {greedy.plaintext}",
                f"{api.url}/v1/events",
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: open_streams(api) == PER_PROCESS, 10, 0.1, "curl's stream")
        finally:
            leaving.kill()
            leaving.wait()
        wait_for(lambda: open_streams(api) == PER_PROCESS - 1, 5, 0.1, "curl's slot to free")
        again = Held(api, third)
        held.append(again)
        assert again.response.status_code == 200


async def test_revoking_a_token_ends_its_open_streams(api: ServiceProcess, db: Database) -> None:
    doomed, kept = await make_token(db, "doomed"), await make_token(db, "kept")
    with holding() as held:
        theirs = [Held(api, doomed, read=True) for _ in range(2)]
        ours = Held(api, kept, read=True)
        held.extend([*theirs, ours])
        assert [h.response.status_code for h in held] == [200, 200, 200]

        assert await revoke_token(db, doomed.id)
        for stream in theirs:
            assert stream.ended.wait(10), "a revoked token's stream stayed open"
            assert stream.clean  # ended as a whole response, not a cut connection
        assert not ours.ended.is_set()
        wait_for(lambda: open_streams(api) == 1, 5, 0.1, "the revoked streams' slots")
        retry = await asyncio.to_thread(
            httpx.get, f"{api.url}/v1/events", headers=bearer(doomed), timeout=5
        )
        assert retry.status_code == 401
