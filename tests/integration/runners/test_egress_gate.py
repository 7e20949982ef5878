"""The per-token gate on the real egress proxy (core/egressgate.py in homerun/egress-proxy).

The proxy runs with the configuration the stack renders (``squid_conf(..., gate=...)``) and
its key as the stack mounts it; two stand-in hosts, ``a.test`` and ``b.test``, both on the
operator's list. Requests go from this host straight to the proxy, with the credential a
runner would put in ``HTTP_PROXY`` or without.
"""

from __future__ import annotations

import base64
import http.client
import io
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import pytest

from core import egress, egressgate
from tests.conftest import wait_for
from tests.integration.runners.test_egress import (
    HTTP_PORT,
    PROXY_IMAGE,
    PYTHON_IMAGE,
    SERVER,
    _free_network,
    _ip,
)

pytestmark = pytest.mark.integration

KEY = b"gate-test-key-0123456789abcdef"
KEY_FILE = "/run/secrets/egress-proxy-key"
PROXY_UID = 13  # Debian's proxy user, which runs squid and its helpers


@dataclass
class Proxy:
    address: str
    container: Any

    def get(self, host: str, credential: tuple[str, str] | None) -> int:
        """The status a plain-HTTP GET of ``host`` through the proxy gets."""
        conn = http.client.HTTPConnection(self.address, egress.PROXY_PORT, timeout=15)
        headers = {"Host": f"{host}:{HTTP_PORT}"}
        if credential is not None:
            raw = base64.b64encode(f"{credential[0]}:{credential[1]}".encode()).decode()
            headers["Proxy-Authorization"] = f"Basic {raw}"
        try:
            conn.request("GET", f"http://{host}:{HTTP_PORT}/", headers=headers)
            return conn.getresponse().status
        finally:
            conn.close()

    def connect(self, host: str, credential: tuple[str, str]) -> int:
        """The status of a CONNECT (what HTTPS does) to ``host`` through the proxy."""
        conn = http.client.HTTPConnection(self.address, egress.PROXY_PORT, timeout=15)
        raw = base64.b64encode(f"{credential[0]}:{credential[1]}".encode()).decode()
        try:
            conn.request(
                "CONNECT",
                f"{host}:{HTTP_PORT}",
                headers={"Host": f"{host}:{HTTP_PORT}", "Proxy-Authorization": f"Basic {raw}"},
            )
            return conn.getresponse().status
        finally:
            conn.close()


def _tar(name: str, data: bytes, uid: int = 0) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        if "/" in name:
            folder = tarfile.TarInfo(name.rsplit("/", 1)[0])
            folder.type, folder.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(folder)
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.uid, info.gid = len(data), 0o400 if uid else 0o644, uid, uid
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture(scope="module")
def proxy() -> Iterator[Proxy]:
    client = docker.from_env()
    tag = f"egress-gate-{uuid.uuid4().hex[:8]}"
    gate = f"{egress.GATE_LIB_DIR}/core/egressgate.py"
    try:
        client.containers.run(PROXY_IMAGE, ["test", "-f", gate], remove=True, network_mode="none")
    except docker.errors.ContainerError:
        pytest.fail(f"{PROXY_IMAGE} has no {gate}: an old image (scripts/images.sh egress-proxy)")
    containers: list[Any] = []
    internet = _free_network(
        client,
        f"{tag}-internet",
        lambda n: [f"198.51.100.{64 * ((n + 2) % 4)}/26", f"2001:db8:e8:{n:x}::/64"],
        enable_ipv6=True,
    )
    try:
        hosts = {}
        for name in ("a", "b"):
            c = client.containers.create(
                PYTHON_IMAGE,
                ["python3", "-c", SERVER],
                name=f"{tag}-{name}",
                environment={"NAME": name},
                network=internet.name,
                labels={"homerun.test": tag},
            )
            containers.append(c)
            c.start()
            hosts[f"{name}.test"] = _ip(c, internet.name)[0]
        conf = egress.squid_conf(
            egress.parse_allow_list([f"a.test:{HTTP_PORT}", f"b.test:{HTTP_PORT}"]),
            gate=egress.Gate(key_file=KEY_FILE),
        )
        box = client.containers.create(
            PROXY_IMAGE,
            name=f"{tag}-proxy",
            network=internet.name,
            extra_hosts=hosts,
            labels={"homerun.test": tag},
        )
        containers.append(box)
        box.put_archive("/etc/squid", _tar("squid.conf", conf.encode()))
        # As Swarm mounts the secret: the proxy user's, 0400, with a final newline.
        box.put_archive("/run", _tar("secrets/egress-proxy-key", KEY + b"\n", PROXY_UID))
        box.start()
        wait_for(
            lambda: b"Accepting HTTP Socket connections" in box.logs(),
            30,
            message="the egress proxy to listen",
        )
        yield Proxy(_ip(box, internet.name)[0], box)
        print(box.logs().decode()[-4000:])  # in the report of a failed test
    finally:
        for c in containers:
            try:
                c.remove(force=True)
            except docker.errors.NotFound:
                pass
        internet.remove()
        client.close()


def _credential(allow: list[str] | None, key: bytes = KEY) -> tuple[str, str]:
    return egressgate.credentials(key, "tok-" + uuid.uuid4().hex[:6], allow, int(time.time()) + 600)


def test_a_request_without_a_signed_credential_is_challenged(proxy: Proxy) -> None:
    assert proxy.get("a.test", None) == 407
    assert proxy.get("a.test", _credential(None, key=b"not-the-stack-key")) == 407
    _, password = _credential([f"a.test:{HTTP_PORT}"])
    # The list widened after signing: the signature no longer holds.
    wider, _ = _credential(None)
    assert proxy.get("b.test", (wider, password)) == 407
    expired = egressgate.credentials(KEY, "t", None, int(time.time()) - 1)
    assert proxy.get("a.test", expired) == 407


def test_a_narrowed_token_reaches_its_host_and_not_the_operators_other(proxy: Proxy) -> None:
    narrowed = _credential([f"a.test:{HTTP_PORT}"])
    assert proxy.get("a.test", narrowed) == 200
    assert proxy.get("b.test", narrowed) == 403
    assert proxy.connect("a.test", narrowed) == 200
    assert proxy.connect("b.test", narrowed) == 403
    log = proxy.container.logs(stdout=True, stderr=False).decode()
    token = egressgate._decode(narrowed[0])
    assert token is not None
    assert f"TCP_DENIED/403 GET http://b.test:{HTTP_PORT}/" in log
    assert f"token:{token.token_id}" in log


def test_a_null_list_token_reaches_every_host_the_operator_allows(proxy: Proxy) -> None:
    whole = _credential(None)
    assert proxy.get("a.test", whole) == 200
    assert proxy.get("b.test", whole) == 200
    # The operator's list still applies after the token's: nothing else is reachable.
    assert proxy.get("c.test", whole) == 403


def test_an_empty_list_token_reaches_nothing(proxy: Proxy) -> None:
    closed = _credential([])
    assert proxy.get("a.test", closed) == 403
