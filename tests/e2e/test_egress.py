"""Network egress on the deployed stack: an egress task reaches a stand-in host on the
allow-list through ``egress-proxy``, and nothing of the stack.

The stand-in internet is a network namespace on this host (a veth pair, a documentation
address, a web server in it): outside every Docker network, reached the way the internet
is, through the proxy's routed overlay and the host. The proxy learns the stand-in's name
from ``--host-add`` (a real deployment resolves names through DNS).
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import subprocess
import uuid
from collections.abc import Iterator

import docker
import pytest

from tests.e2e.conftest import EGRESS_ALLOWED, Stack, running_containers, submit, wait_job
from tests.harness.subnets import first_unused

# Documentation ranges, checked unused on this host first (tests/harness/subnets.py).
CANDIDATES = ("198.51.100.248/30", "203.0.113.248/30", "192.0.2.248/30")

PROBE = """
import json, socket, urllib.error, urllib.request
targets = json.load(open('/homerun/input.json'))
out = {}
def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return f'{r.status} {r.read().decode()}'
    except urllib.error.HTTPError as e:
        return str(e.code)
    except Exception as e:
        return f'error {e}'
def tcp(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return 'connected'
    except OSError as e:
        return f'error {e}'
for url in targets['proxied']:
    out['proxied ' + url] = get(url)
for host, port in targets['tcp']:
    out[f'tcp {host} {port}'] = tcp(host, port)
for name in targets['resolve']:
    try:
        out['resolve ' + name] = 'resolved ' + str(socket.getaddrinfo(name, 80)[0][4])
    except OSError as e:
        out['resolve ' + name] = f'error {e}'
json.dump(out, open('/homerun/output.json', 'w'))
"""


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


@pytest.fixture
def stand_in() -> Iterator[str]:
    """A web server on port 8080 in a namespace of its own, answering 'allowed'."""
    net = ipaddress.ip_network(first_unused(CANDIDATES))
    host_address, ns_address = (str(a) for a in net.hosts())
    ns = f"hre2e-egress-{uuid.uuid4().hex[:6]}"
    host_if, ns_if = f"he{ns[-6:]}", f"hn{ns[-6:]}"
    _sh("ip", "netns", "add", ns)
    server = None
    try:
        _sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _sh("ip", "link", "set", ns_if, "netns", ns)
        _sh("ip", "addr", "add", f"{host_address}/30", "dev", host_if)
        _sh("ip", "link", "set", host_if, "up")
        _sh("ip", "-n", ns, "addr", "add", f"{ns_address}/30", "dev", ns_if)
        _sh("ip", "-n", ns, "link", "set", ns_if, "up")
        _sh("ip", "-n", ns, "link", "set", "lo", "up")
        _sh("ip", "-n", ns, "route", "add", "default", "via", host_address)
        code = (
            "from http.server import BaseHTTPRequestHandler, HTTPServer\n"
            "class H(BaseHTTPRequestHandler):\n"
            "    def do_GET(self):\n"
            "        self.send_response(200); self.send_header('Content-Length', '7')\n"
            "        self.end_headers(); self.wfile.write(b'allowed')\n"
            "HTTPServer(('0.0.0.0', 8080), H).serve_forever()\n"
        )
        server = subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-c", code])
        yield ns_address
    finally:
        if server is not None:
            server.kill()
            server.wait(10)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, check=False)
        _sh("ip", "netns", "del", ns)


@contextlib.contextmanager
def _proxy_resolving(proxy: str, hosts: dict[str, str]) -> Iterator[None]:
    """The proxy learns these names (the update returns once the new proxy task runs); then
    the session's stack goes back to the spec it was deployed with: later tests (make up
    again changes nothing) compare against it."""
    adds = [arg for name, address in hosts.items() for arg in ("--host-add", f"{name}:{address}")]
    subprocess.run(
        ["docker", "service", "update", "--quiet", *adds, proxy],
        check=True,
        capture_output=True,
        timeout=180,
    )
    try:
        yield
    finally:
        subprocess.run(
            ["docker", "service", "rollback", "--quiet", proxy],
            check=True,
            capture_output=True,
            timeout=180,
        )


def _vips(client: docker.DockerClient, service: str) -> list[str]:
    endpoint = client.services.get(service).attrs.get("Endpoint", {})
    return [v["Addr"].split("/")[0] for v in endpoint.get("VirtualIPs", [])]


def test_an_egress_task_reaches_the_allowed_host_and_none_of_the_stack(
    stack: Stack, stand_in: str, docker_client: docker.DockerClient
) -> None:
    proxy = stack.service("egress-proxy")
    with _proxy_resolving(proxy, {"allowed.test": stand_in, "loopback.test": "127.0.0.1"}):
        vips = {
            key: _vips(docker_client, stack.service(key))
            for key in ("api", "postgres-primary", "redis-queue", "notifier")
        }
        targets = {
            "proxied": [
                "http://allowed.test:8080/",
                "http://loopback.test:8080/",
                f"http://{stand_in}:8080/",
                "http://api:8000/healthz",
                "http://169.254.169.254/latest/meta-data/",
                *(f"http://{vip}:8000/healthz" for vip in vips["api"]),
            ],
            "tcp": [
                [stand_in, 8080],
                ["api", 8000],
                *([vip, 8000] for vip in vips["api"]),
                *([vip, 5432] for vip in vips["postgres-primary"]),
                *([vip, 6379] for vip in vips["redis-queue"]),
            ],
            "resolve": ["allowed.test", "api", "postgres-primary", "redis-queue", "example.com"],
        }
        with stack.http() as http:
            job = submit(
                http,
                {
                    "tasks": [
                        {
                            "name": "probe",
                            "type": "python",
                            "payload": {"code": PROBE, "input": targets},
                            "network": "egress",
                            "max_attempts": 1,
                        }
                    ]
                },
            )
            done = wait_job(http, job["id"])
            [task] = done["tasks"]
            detail = http.get(f"/v1/jobs/{job['id']}/tasks/{task['id']}").raise_for_status().json()
        assert done["status"] == "succeeded", detail
        seen = detail["output"]
        assert seen.pop("proxied http://allowed.test:8080/") == "200 allowed", seen
        for key, value in seen.items():
            if key.startswith("proxied "):
                assert value == "403", (key, value)
            else:
                assert value.startswith("error"), (key, value)
        logs = subprocess.run(
            ["docker", "service", "logs", "--raw", proxy],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert f"GET http://allowed.test:8080/ {stand_in}" in logs
        assert "TCP_DENIED/403 GET http://loopback.test:8080/" in logs, json.dumps(seen)


NARROW_PROBE = """
import json, os, urllib.error, urllib.request
out = {"proxy has a credential": "@egress-proxy:" in os.environ["HTTP_PROXY"]}
for url in ("http://allowed.test:8080/", "http://other.test:8080/"):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            out[url] = f"{r.status} {r.read().decode()}"
    except urllib.error.HTTPError as e:
        out[url] = str(e.code)
json.dump(out, open("/homerun/output.json", "w"))
"""


def _cli(client: docker.DockerClient, stack: Stack, *args: str) -> str:
    """``homerun ARGS`` inside an API task: its settings (the operator's allow-list), its
    database."""
    (api, *_) = running_containers(client, stack.service("api"))
    # demux: the CLI's stderr note would otherwise land inside its stdout lines.
    result = client.containers.get(api).exec_run(["homerun", *args], demux=True)
    stdout, stderr = result.output
    assert result.exit_code == 0, (stdout, stderr)
    return str((stdout or b"").decode())


def test_a_token_narrowed_to_one_host_reaches_it_and_not_the_operators_other(
    stack: Stack, stand_in: str, docker_client: docker.DockerClient
) -> None:
    # Both names are on the operator's list (EGRESS_COMPOSE_ARGS) and both reach the
    # stand-in: only the token's own list tells them apart.
    created = _cli(docker_client, stack, "token", "create", f"narrow-{uuid.uuid4().hex[:6]}")
    token_id = created.split("id:", 1)[1].split()[0]
    plaintext = created.split("token:", 1)[1].split()[0]
    _cli(docker_client, stack, "token", "egress", token_id, EGRESS_ALLOWED)
    job_body = {
        "tasks": [
            {
                "name": "probe",
                "type": "python",
                "payload": {"code": NARROW_PROBE},
                "network": "egress",
                "max_attempts": 1,
            }
        ]
    }
    proxy = stack.service("egress-proxy")
    with (
        _proxy_resolving(proxy, {"allowed.test": stand_in, "other.test": stand_in}),
        dataclasses.replace(stack, token=plaintext).http() as http,
    ):
        done = wait_job(http, submit(http, job_body)["id"])
        [task] = done["tasks"]
        detail = http.get(f"/v1/jobs/{done['id']}/tasks/{task['id']}").raise_for_status().json()
        assert done["status"] == "succeeded", detail
        assert detail["output"] == {
            "proxy has a credential": True,
            "http://allowed.test:8080/": "200 allowed",
            "http://other.test:8080/": "403",
        }
        logs = subprocess.run(
            ["docker", "service", "logs", "--raw", proxy],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert f"TCP_DENIED/403 GET http://other.test:8080/ - token:{token_id}" in logs, logs[
            -3000:
        ]
        # With no egress left, the same job is refused at submission, saying why.
        _cli(docker_client, stack, "token", "egress", token_id, "none")
        refused = http.post("/v1/jobs", json=job_body)
        assert refused.status_code == 422, refused.text
        assert "egress allow-list is empty" in refused.text
