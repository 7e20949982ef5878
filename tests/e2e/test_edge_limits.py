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
import os
import select
import signal
import socket
import subprocess
from collections.abc import Iterator
from urllib.parse import urlsplit

import docker
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
    wait_for(lambda: _answers(stack), timeout=30, message="127.0.0.1 to answer after the attack")


def _answers(stack: Stack) -> bool:
    """Whether the published port (on 127.0.0.1) answers /healthz with 200."""
    try:
        return httpx.get(f"{stack.url}/healthz", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _forwarders(port: int) -> list[int]:
    """Pids of the engine's userland forwarders (docker-proxy) of host port ``port``, IPv4."""
    found = subprocess.run(
        ["pgrep", "-f", f"docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port {port} "],
        capture_output=True,
        text=True,
    )
    return [int(pid) for pid in found.stdout.split()]


def test_a_dead_port_forwarder_fails_the_edge_health_check_and_the_port_comes_back(
    stack: Stack,
) -> None:
    """Issue 12, item 1, the other half: whatever makes the forwarder exit, the published
    port must not stay refused while every health check is green. The edge's check asks
    the published port through the node (stack/topology.py, _edge_healthcheck), so a dead
    forwarder makes the edge unhealthy and Swarm replaces it, forwarder included."""
    port = urlsplit(stack.url).port
    assert port is not None
    forwarders = _forwarders(port)
    if not forwarders:
        pytest.skip("this engine runs no userland forwarder for the port (userland-proxy off)")
    edge_before = _edge_containers(stack)
    for pid in forwarders:
        os.kill(pid, signal.SIGKILL)

    def refused() -> bool:
        try:
            httpx.get(f"{stack.url}/healthz", timeout=2.0)
        except httpx.ConnectError:
            return True
        return False

    # The attack's effect, reproduced: the port is refused...
    assert wait_for(refused, timeout=5, message="the port to be refused without a forwarder")

    # ...until the failed check has the edge replaced (5 retries 5 s apart, then a restart).
    wait_for(lambda: _answers(stack), timeout=120, message="the published port to answer again")
    assert _edge_containers(stack).isdisjoint(edge_before), "the edge was not replaced"


def _edge_containers(stack: Stack) -> set[str]:
    client = docker.from_env()
    try:
        listed = client.containers.list(
            filters={"label": f"com.docker.swarm.service.name={stack.service('edge')}"}
        )
        return {c.id for c in listed}
    finally:
        client.close()
