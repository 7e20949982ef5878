"""Network egress on a real engine, against a stand-in internet (core/egress.py).

The world the module builds: an *internet* bridge network (documentation addresses,
IPv4 and IPv6) with two web servers, ``allowed`` and ``other``; a *private* network with a
server standing in for homerun's own services (the API, Postgres, Redis live on private
addresses); the internal *egress* network (no route out, no host address on its bridge)
that egress tasks join; and the egress proxy (the real ``homerun/egress-proxy`` image with
the configuration ``core/egress.py`` renders) on all three. The proxy resolves names
itself (``/etc/hosts`` entries for the test names, Docker's DNS for the private service).

A probe task then tries everything: through the proxy by name (allowed, not on the list, on
the list but resolving to loopback, metadata, the host gateway, a private service, IPv6
loopback and ULA, IPv4-mapped) and by address, plain HTTP and CONNECT; and directly,
without the proxy, TCP and UDP, IPv4 and IPv6, DNS included. Only the allowed host answers.
"""

from __future__ import annotations

import io
import ipaddress
import json
import tarfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
from docker.types import IPAMConfig, IPAMPool

from core import egress
from core import transitions as tr
from plugins.tasktypes import ContainerSpec, NetworkPolicy
from runners.containers import Engine
from runners.results import Exited, Stop
from runners.worker import Runner
from tests.conftest import eventually, wait_for
from tests.harness.subnets import unused_by_host
from tests.integration.runners.conftest import Jobs, small_engine
from tests.integration.runners.test_containers import labels

pytestmark = pytest.mark.integration

PYTHON_IMAGE = "homerun/task-python:0.1.0"
PROXY_IMAGE = "homerun/egress-proxy:0.1.0"
PROXY_ALIAS = "egress-proxy"
HTTP_PORT, UDP_PORT = 8080, 8081
# The host's end of Docker's default bridge: the host's services are behind it.
HOST_GATEWAY = "172.17.0.1"

# A web server (dual-stack, answers with its name) and a UDP echo: the stand-in hosts.
SERVER = f"""
import os, socket, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
NAME = os.environ["NAME"].encode()
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", str(len(NAME)))
        self.end_headers(); self.wfile.write(NAME)
class Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()
def echo():
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", {UDP_PORT}))
    while True:
        data, peer = s.recvfrom(100)
        s.sendto(NAME + b" " + data, peer)
threading.Thread(target=echo, daemon=True).start()
Server(("::", {HTTP_PORT}), Handler).serve_forever()
"""

# The task: every way out it can think of, at once; one JSON line of what happened.
PROBE = r"""
import http.client, json, os, socket, sys, urllib.error, urllib.parse, urllib.request
from concurrent.futures import ThreadPoolExecutor
T = json.load(open("/homerun/targets.json"))
def proxied(url):
    try:
        with urllib.request.urlopen(url, timeout=8) as r:
            return f"{r.status} {r.read().decode()}"
    except urllib.error.HTTPError as e:
        return f"{e.code}"
    except Exception as e:
        return f"error {type(e).__name__}: {e}"
def connect(target):
    try:
        # Without the variable (no egress), the proxy is tried all the same.
        proxy = urllib.parse.urlsplit(os.environ.get("HTTPS_PROXY", "http://egress-proxy:3128"))
        c = http.client.HTTPConnection(proxy.hostname, proxy.port, timeout=8)
        host, port = target.rsplit(":", 1)
        c.set_tunnel(host.strip("[]"), int(port))
        c.request("GET", "/")
        r = c.getresponse()
        return f"{r.status} {r.read().decode()}"
    except OSError as e:
        return f"error {type(e).__name__}: {e}"
def tcp(target):
    host, port = target
    try:
        s = socket.create_connection((host, port), timeout=3)
        s.close()
        return "connected"
    except OSError as e:
        return f"error {e}"
def udp(target):
    host, port = target
    try:
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.settimeout(3)
        s.sendto(b"ping", (host, port))
        return "answered " + s.recv(100).decode()
    except OSError as e:
        return f"error {e}"
def resolve(name):
    try:
        return "resolved " + repr(socket.getaddrinfo(name, 80))
    except OSError as e:
        return f"error {e}"
def dns(server):
    # A raw DNS query for example.com, sent straight to a resolver.
    q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01"
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(3)
        s.sendto(q, (server, 53))
        return "answered %d bytes" % len(s.recv(512))
    except OSError as e:
        return f"error {e}"
jobs = {}
with ThreadPoolExecutor(64) as pool:
    for url in T["proxied"]:
        jobs["proxied " + url] = pool.submit(proxied, url)
    for target in T["connect"]:
        jobs["connect " + target] = pool.submit(connect, target)
    for host, port in T["tcp"]:
        jobs[f"tcp {host} {port}"] = pool.submit(tcp, (host, port))
    for host, port in T["udp"]:
        jobs[f"udp {host} {port}"] = pool.submit(udp, (host, port))
    for name in T["resolve"]:
        jobs["resolve " + name] = pool.submit(resolve, name)
    for server in T["dns"]:
        jobs["dns " + server] = pool.submit(dns, server)
out = {k: f.result() for k, f in jobs.items()}
try:
    out["ipv6 disabled"] = open("/proc/sys/net/ipv6/conf/all/disable_ipv6").read().strip()
except OSError as e:
    out["ipv6 disabled"] = f"error {e}"
out["env"] = {k: v for k, v in os.environ.items() if "proxy" in k.lower()}
print(json.dumps(out))
"""


@dataclass
class World:
    egress_network: str
    proxy: Any
    allowed: tuple[str, str]  # its IPv4 and IPv6 address
    other: tuple[str, str]
    private: str  # the stand-in of homerun's own services
    internet_gateway: str
    allow: tuple[str, ...]

    def proxy_log(self) -> str:
        return str(self.proxy.logs(stdout=True, stderr=False).decode())


def _network(client: docker.DockerClient, name: str, subnets: list[str], **kw: Any) -> Any:
    ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=s) for s in subnets])
    return client.networks.create(name, driver="bridge", ipam=ipam, **kw)


def _free_network(
    client: docker.DockerClient, name: str, candidates: Callable[[int], list[str]], **kw: Any
) -> Any:
    """A network on the first candidate subnets no other network of the engine holds."""
    for n in range(1, 60):
        subnets = candidates(n)
        if not all(unused_by_host(s) for s in subnets):
            continue  # a host route there: Docker would not notice, the host would break
        try:
            return _network(client, name, subnets, **kw)
        except docker.errors.APIError as exc:
            if "overlap" not in str(exc).lower():
                raise
    raise AssertionError(f"no free subnet for {name}")


def _ip(container: Any, network: str) -> tuple[str, str]:
    container.reload()
    net = container.attrs["NetworkSettings"]["Networks"][network]
    return str(net["IPAddress"]), str(net["GlobalIPv6Address"])


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    client = docker.from_env()
    tag = f"egress-it-{uuid.uuid4().hex[:8]}"
    made: list[Any] = []
    containers: list[Any] = []
    try:
        internet = _free_network(
            client,
            f"{tag}-internet",
            lambda n: [f"198.51.100.{64 * (n % 4)}/26", f"2001:db8:e9:{n:x}::/64"],
            enable_ipv6=True,
        )
        made.append(internet)
        private = _free_network(client, f"{tag}-private", lambda n: [f"10.213.{n}.0/24"])
        made.append(private)
        # What the stack and the operator make: internal, and no host address on the bridge.
        inside = client.networks.create(
            f"{tag}-egress",
            driver="bridge",
            internal=True,
            options={"com.docker.network.bridge.inhibit_ipv4": "true"},
        )
        made.append(inside)

        def server(name: str, network: Any, alias: str | None = None) -> Any:
            c = client.containers.create(
                PYTHON_IMAGE,
                ["python3", "-c", SERVER],
                name=f"{tag}-{name}",
                environment={"NAME": name},
                network=network.name,
                labels={"homerun.test": tag},
            )
            containers.append(c)
            if alias:
                network.disconnect(c)
                network.connect(c, aliases=[alias])
            c.start()
            return c

        allowed = _ip(server("allowed", internet), internet.name)
        other = _ip(server("other", internet), internet.name)
        svc = _ip(server("homerun-svc", private, alias="homerun-svc"), private.name)[0]
        internet.reload()
        # Docker gives a bridge the first address of its subnet when none is named.
        [gateway] = [
            str(next(ipaddress.ip_network(c["Subnet"]).hosts()))
            for c in internet.attrs["IPAM"]["Config"]
            if "." in c["Subnet"]
        ]
        hosts = {
            "allowed.test": allowed[0],
            "allowed6.test": allowed[1],
            "a.wild.test": allowed[0],
            "wild.test": allowed[0],
            "other.test": other[0],
            "loopback.test": "127.0.0.1",
            "zero.test": "0.0.0.0",
            "metadata.test": "169.254.169.254",
            "gateway.test": HOST_GATEWAY,
            "internetgw.test": gateway,
            "private.test": svc,
            "v6loop.test": "::1",
            "ula.test": "fd00::1",
            "mapped.test": "::ffff:127.0.0.1",
        }
        listed = [n for n in hosts if n not in ("other.test", "a.wild.test", "wild.test")]
        allow = (
            *(f"{n}:{HTTP_PORT}" for n in listed),
            f"*.wild.test:{HTTP_PORT}",
            f"homerun-svc:{HTTP_PORT}",
            "loopback.test:5432",
            "loopback.test:6379",
            "gateway.test:5432",
        )
        conf = egress.squid_conf(
            egress.parse_allow_list(allow),
            # The internet's gateway is this host: homerun's own address, not private here.
            extra_denied=egress.parse_networks([f"{gateway}/32"]),
        )
        proxy = client.containers.create(
            PROXY_IMAGE,
            name=f"{tag}-proxy",
            network=internet.name,
            extra_hosts=hosts,
            labels={"homerun.test": tag},
        )
        containers.append(proxy)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("squid.conf")
            info.size, info.mode = len(conf.encode()), 0o644
            tar.addfile(info, io.BytesIO(conf.encode()))
        proxy.put_archive("/etc/squid", buf.getvalue())
        private.connect(proxy)
        inside.connect(proxy, aliases=[PROXY_ALIAS])
        proxy.start()
        wait_for(
            lambda: b"Accepting HTTP Socket connections" in proxy.logs(),
            30,
            message="the egress proxy to listen",
        )
        yield World(inside.name, proxy, allowed, other, svc, gateway, allow)
    finally:
        for c in containers:
            try:
                c.remove(force=True)
            except docker.errors.NotFound:
                pass
        for net in made:
            net.remove()
        client.close()


def _targets(world: World) -> dict[str, Any]:
    p = HTTP_PORT
    a4, a6 = world.allowed
    o4, o6 = world.other
    refused_names = [
        "other.test",
        "wild.test",
        "loopback.test",
        "zero.test",
        "metadata.test",
        "gateway.test",
        "internetgw.test",
        "private.test",
        "homerun-svc",
        "v6loop.test",
        "ula.test",
        "mapped.test",
    ]
    return {
        "proxied": [
            f"http://allowed.test:{p}/",
            f"http://allowed6.test:{p}/",
            f"http://a.wild.test:{p}/",
            *(f"http://{n}:{p}/" for n in refused_names),
            "http://loopback.test:5432/",
            "http://loopback.test:6379/",
            "http://gateway.test:5432/",
            f"http://allowed.test:{UDP_PORT}/",  # a port not on the list
            f"http://{a4}:{p}/",  # by address: entries are names
            f"http://[{a6}]:{p}/",
            f"http://{o4}:{p}/",
            f"http://[{o6}]:{p}/",
            "http://169.254.169.254/latest/meta-data/",
            "http://127.0.0.1:5432/",
            f"http://[::1]:{p}/",
            f"http://{HOST_GATEWAY}:5432/",
            f"http://{world.private}:{p}/",
            f"http://{PROXY_ALIAS}:3128/squid-internal-mgr/info",
        ],
        "connect": [
            f"allowed.test:{p}",
            f"loopback.test:{p}",
            f"metadata.test:{p}",
            f"private.test:{p}",
            f"{a4}:{p}",
            f"other.test:{p}",
        ],
        "tcp": [
            [h, p] for h in (a4, a6, o4, o6, world.private, HOST_GATEWAY, world.internet_gateway)
        ]
        + [[HOST_GATEWAY, 5432], [HOST_GATEWAY, 6379], ["169.254.169.254", 80]],
        "udp": [[h, UDP_PORT] for h in (a4, a6, o4, world.private)],
        "resolve": ["allowed.test", "deb.debian.org", "homerun-svc", "example.com"],
        "dns": ["8.8.8.8", "10.255.255.53", HOST_GATEWAY, world.internet_gateway],
    }


def _assert_contained(seen: dict[str, Any], world: World) -> None:
    p = HTTP_PORT
    allowed = {
        f"proxied http://allowed.test:{p}/",
        f"proxied http://allowed6.test:{p}/",
        f"proxied http://a.wild.test:{p}/",
        f"connect allowed.test:{p}",
    }
    for key in allowed:
        assert seen[key] == "200 allowed", (key, seen[key])
    for key, value in seen.items():
        if key in allowed or key in ("ipv6 disabled", "env"):
            continue
        if key.startswith(("proxied ", "connect ")):
            # Squid's refusal; the only other answer would be one of our servers' names.
            assert value.startswith(("403", "error")), (key, value)
            assert "allowed" not in value and "other" not in value and "homerun-svc" not in value
        else:
            assert value.startswith("error"), (key, value)
    assert seen["ipv6 disabled"] == "1"
    proxy = f"http://{PROXY_ALIAS}:3128"
    assert seen["env"] == {
        "HTTP_PROXY": proxy,
        "HTTPS_PROXY": proxy,
        "http_proxy": proxy,
        "https_proxy": proxy,
    }


def _egress_engine(instance: str, work: Path, world: World) -> Engine:
    return small_engine(
        instance,
        work,
        output_limit_bytes=64 * 1024,
        allow_task_network=True,
        egress_network=world.egress_network,
        egress_proxy_url=f"http://{PROXY_ALIAS}:3128",
        egress_allow=world.allow,
    )


def _probe_spec(world: World, network: NetworkPolicy) -> ContainerSpec:
    return ContainerSpec(
        image=PYTHON_IMAGE,
        argv=["python3", "/homerun/probe.py"],
        files={
            "/homerun/probe.py": PROBE.encode(),
            "/homerun/targets.json": json.dumps(_targets(world)).encode(),
        },
        network=network,
    )


async def test_an_egress_task_reaches_the_allowed_host_and_nothing_else(
    world: World, instance: str, tmp_path: Path
) -> None:
    engine = _egress_engine(instance, tmp_path / "work", world)
    try:
        result = await engine.run(
            _probe_spec(world, NetworkPolicy.EGRESS),
            labels(instance),
            payload={},
            inputs={},
            time_limit=90,
            stop=Stop(),
        )
    finally:
        engine.close()
    assert isinstance(result, Exited) and result.exit_code == 0, result.stderr
    seen = json.loads(result.stdout)
    _assert_contained(seen, world)
    # Each decision is a line of the proxy's log: the allowed request and the refusals.
    log = await eventually(
        lambda: (t := world.proxy_log()) and "TCP_DENIED/403 GET http://loopback.test" in t and t,
        10,
        "the proxy's log of the refusal",
    )
    assert f"GET http://allowed.test:{HTTP_PORT}/ {world.allowed[0]}" in log
    assert f"CONNECT allowed.test:{HTTP_PORT} {world.allowed[0]}" in log
    assert "TCP_DENIED/403 GET http://169.254.169.254/latest/meta-data/" in log


async def test_a_task_that_asks_for_nothing_still_has_no_network(
    world: World, instance: str, tmp_path: Path
) -> None:
    # Even on a runner whose deployment allows egress.
    engine = _egress_engine(instance, tmp_path / "work", world)
    try:
        result = await engine.run(
            _probe_spec(world, NetworkPolicy.NONE),
            labels(instance),
            payload={},
            inputs={},
            time_limit=90,
            stop=Stop(),
        )
    finally:
        engine.close()
    assert isinstance(result, Exited) and result.exit_code == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["env"] == {}
    failed = {k: v for k, v in seen.items() if k not in ("env", "ipv6 disabled")}
    assert all(str(v).startswith("error") for v in failed.values()), failed


async def test_a_submitted_egress_task_runs_through_the_proxy(
    world: World, jobs: Jobs, start_runner: Callable[..., Runner]
) -> None:
    code = (
        "import json, urllib.request\n"
        f"ok = urllib.request.urlopen('http://allowed.test:{HTTP_PORT}/', timeout=8).read()\n"
        "try:\n"
        f"    urllib.request.urlopen('http://loopback.test:{HTTP_PORT}/', timeout=8)\n"
        "    bad = 'reached'\n"
        "except urllib.error.HTTPError as e:\n"
        "    bad = e.code\n"
        "json.dump({'ok': ok.decode(), 'bad': bad}, open('/homerun/output.json', 'w'))\n"
    )
    created = await jobs.submit(
        tr.NewTask("out", "python", {"code": code}, network="egress", max_attempts=1),
        tr.NewTask("plain", "python", {"code": code}, max_attempts=1),
    )
    start_runner(
        allow_task_network=True,
        egress_network=world.egress_network,
        egress_proxy_url=f"http://{PROXY_ALIAS}:3128",
        egress_allow=world.allow,
    )
    await eventually(lambda: jobs.finished(created.job_id), 60, "the job to finish")
    tasks = await jobs.tasks(created.job_id)
    assert tasks["out"]["network"] == "egress" and tasks["plain"]["network"] == "none"
    assert tasks["out"]["status"] == "succeeded", await jobs.results(tasks["out"]["id"])
    assert json.loads(tasks["out"]["output"]) == {"ok": "allowed", "bad": 403}
    # The same code without egress: no proxy, no network, the task fails.
    assert tasks["plain"]["status"] == "failed"
    [plain] = await jobs.results(tasks["plain"]["id"])
    assert "URLError" in plain["stderr"] or "urlopen error" in plain["stderr"], plain
