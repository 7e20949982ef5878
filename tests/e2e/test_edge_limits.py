"""The published port keeps answering while one source holds thousands of connections.

Issue 12, item 1: one anonymous client holding about 4,500 idle connections to the
published port made the port's forwarder exit, and the port stayed refused until the edge
was redeployed. The edge now closes a source's connections past its cap at accept, so
neither the edge nor the forwarder in front of it holds more than the cap for one client.

The attacker connects to 127.0.0.1 (through the engine's userland forwarder, as a local
client does); the legitimate client uses this machine's own non-loopback address, which
reaches the edge from a different source address.
"""

from __future__ import annotations

import contextlib
import select
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import wait_for
from tests.e2e.conftest import Stack

ATTACK_CONNECTIONS = 5000
# The stack's default (stack/topology.py, edge_connections_per_source).
CAP = 200


def _own_address() -> str:
    # A UDP "connect" sends nothing; it only asks the kernel which source it would use.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))
        address: str = s.getsockname()[0]
    return address


@contextlib.contextmanager
def _idle_connections(port: int, count: int) -> Iterator[list[socket.socket]]:
    held: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(2.0)
            try:
                s.connect(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            s.setblocking(False)
            held.append(s)
        yield held
    finally:
        for s in held:
            s.close()


def _closed_by_peer(sockets: list[socket.socket]) -> int:
    # poll, not select: these descriptors are past select's 1,024.
    poller = select.poll()
    by_fd = {s.fileno(): s for s in sockets}
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    closed = 0
    for fd, _ in poller.poll(0):
        try:
            if by_fd[fd].recv(1, socket.MSG_PEEK) == b"":
                closed += 1
        except OSError:  # reset: closed too
            closed += 1
    return closed


def test_one_source_holding_thousands_of_connections_does_not_shut_the_port(stack: Stack) -> None:
    port = urlsplit(stack.url).port
    assert port is not None
    own = _own_address()
    if own.startswith("127."):
        pytest.skip("this machine has no non-loopback address to be a second client from")
    with _idle_connections(port, ATTACK_CONNECTIONS) as held:
        assert len(held) > 4 * CAP, f"only {len(held)} connections could be opened"
        # Every connection past the cap is closed by the edge at once: well before its
        # 10 s request timeout would close idle connections anyway.
        wait_for(
            lambda: _closed_by_peer(held) >= len(held) - CAP - 50,
            timeout=8,
            message="the edge to close the connections over the per-source cap",
        )
        # While they are held, another client is served.
        answer = httpx.get(f"http://{own}:{port}/healthz", timeout=5.0)
        assert answer.status_code == 200, answer.text

    # And once the attacker is gone, the loopback port answers again: nothing in front of
    # the edge gave up.
    def loopback_answers() -> bool:
        try:
            return httpx.get(f"{stack.url}/healthz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(loopback_answers, timeout=30, message="127.0.0.1 to answer after the attack")
