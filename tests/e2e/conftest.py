"""A homerun stack on the real single-node Swarm, deployed once per test session.

The stack is deployed by the same ``scripts/up.sh`` that ``make up`` runs, under a name of its
own (``hre2e<random>``) and on a free port, so it never meets another stack on the engine;
at the end ``scripts/down.sh`` removes it, run twice (the second run must be a no-op), with
``PURGE=1`` so its volumes go too, and the session checks that nothing of it is left and that
no other container on the engine was touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from homerun import sse
from tests.conftest import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "com.docker.stack.namespace"
UP_TIMEOUT_S = 600
EGRESS_ALLOWED = "allowed.test:8080"
# other.test: allowed by the operator too, so that a token narrowed to allowed.test shows
# the narrowing (tests/e2e/test_egress.py).
EGRESS_COMPOSE_ARGS = f"--egress --egress-allow {EGRESS_ALLOWED},other.test:8080,loopback.test:8080"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.e2e)


@dataclass(frozen=True)
class Stack:
    name: str
    url: str
    token: str
    env: dict[str, str]

    def service(self, key: str) -> str:
        return f"{self.name}_{key}"

    def http(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=kwargs.pop("timeout", 15.0),
            **kwargs,
        )


def run_script(
    script: str, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts" / script)],
        cwd=ROOT,
        env=env,
        text=True,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Sentinels:
    """Objects that look like the stack's but are not: `make down` must leave every one."""

    container: str
    service: str
    secret: str
    volume: str
    network: str

    @classmethod
    def create(cls, client: docker.DockerClient, stack: str) -> Sentinels:
        image = "homerun/task-shell:0.1.0"
        # Same prefix, not the topology's names: only exact names may match.
        secret = client.secrets.create(name=f"{stack}_not-ours", data=b"x").id
        volume = client.volumes.create(name=f"{stack}_not-ours").name
        network = client.networks.create(f"{stack}_not-ours", driver="overlay").name
        container = client.containers.run(
            image,
            ["sleep", "3600"],
            name=f"{stack}-sentinel",
            detach=True,
            network_mode="none",
        ).id
        service = client.services.create(
            image,
            ["sleep", "3600"],
            name=f"{stack}x_api",
            labels={"purpose": "homerun e2e sentinel"},
        ).id
        return cls(container, service, secret, volume, network)

    def missing(self, client: docker.DockerClient) -> list[str]:
        getters = {
            "container": client.containers.get,
            "service": client.services.get,
            "secret": client.secrets.get,
            "volume": client.volumes.get,
            "network": client.networks.get,
        }
        gone = []
        for kind, get in getters.items():
            try:
                get(getattr(self, kind))
            except docker.errors.NotFound:
                gone.append(kind)
        return gone

    def remove(self, client: docker.DockerClient) -> None:
        removers: tuple[tuple[str, Callable[[str], None]], ...] = (
            ("service", lambda i: client.services.get(i).remove()),
            ("container", lambda i: client.containers.get(i).remove(force=True)),
            ("secret", lambda i: client.secrets.get(i).remove()),
            ("network", lambda i: client.networks.get(i).remove()),
        )
        for kind, rm in removers:
            try:
                rm(getattr(self, kind))
            except docker.errors.NotFound:
                pass

        def volume_gone() -> bool:
            try:
                client.volumes.get(self.volume).remove()
            except docker.errors.NotFound:
                return True
            return True

        # The volume is free once the sentinel service's container has gone.
        wait_for(volume_gone, timeout=60, interval=0.5, message="sentinel volume removal")


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env(timeout=120)
        swarm = client.info()["Swarm"]["LocalNodeState"]
    except docker.errors.DockerException as exc:
        pytest.fail(f"e2e tests need a Docker engine (scripts/ensure-docker.sh): {exc}")
    if swarm != "active":
        pytest.fail("e2e tests need a Swarm: run scripts/ensure-docker.sh")
    yield client
    client.close()


@pytest.fixture(scope="session")
def stack(docker_client: docker.DockerClient) -> Iterator[Stack]:
    name = f"hre2e{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {
        **os.environ,
        "HOMERUN_STACK": name,
        "HOMERUN_API_PORT": str(port),
        "HOMERUN_UP_TIMEOUT": str(UP_TIMEOUT_S),
        # Built once below: every up.sh of the session then deploys the very same images,
        # even while someone edits the source tree.
        "HOMERUN_SKIP_IMAGES": "1",
        # Slightly lower runner concurrency keeps the 2-core CI machine responsive.
        # A second runner group (tests/e2e/test_runner_groups.py): runner-big, [bigdisk].
        "HOMERUN_COMPOSE_ARGS": "--api-replicas 2 --runner-replicas 1 --runner-concurrency 2"
        " --runner-group big:replicas=1,concurrency=2,labels=bigdisk"
        # Egress on, for tests/e2e/test_egress.py's stand-in host; every other task still
        # asks for nothing and gets no network.
        f" {EGRESS_COMPOSE_ARGS}"
        # tests/e2e/test_retention.py's jobs expire after 1 s (a token of its own) and
        # must go within seconds; a pass over a small database costs nothing.
        " --retention-poll-seconds 2",
    }
    state = ROOT / ".homerun" / "stacks" / name
    try:
        images = run_script("images.sh", env, 1200)
        if images.returncode != 0:
            pytest.fail(f"scripts/images.sh failed ({images.returncode}):\n{images.stderr[-6000:]}")
        up = run_script("up.sh", env, UP_TIMEOUT_S + 300)
        if up.returncode != 0:
            pytest.fail(f"scripts/up.sh failed ({up.returncode}):\n{up.stderr[-6000:]}")
        token = (state / "secrets" / "admin-token").read_text().strip()
        env_file = (state / "env").read_text()
        assert f"HOMERUN_URL=http://127.0.0.1:{port}" in env_file
        assert f"HOMERUN_TOKEN={token}" in env_file
        yield Stack(name=name, url=f"http://127.0.0.1:{port}", token=token, env=env)
    finally:
        try:
            tear_down(docker_client, name, env)
        finally:
            shutil.rmtree(state, ignore_errors=True)


def tear_down(client: docker.DockerClient, name: str, env: dict[str, str]) -> None:
    sentinels = Sentinels.create(client, name)
    try:
        purge = {**env, "PURGE": "1"}
        first = run_script("down.sh", purge, 300)
        second = run_script("down.sh", purge, 300)
        left = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "python"), "scripts/stackctl.py", "leftovers", name],
            cwd=ROOT,
            text=True,
            capture_output=True,
            check=False,
        )
        problems = []
        if first.returncode != 0:
            problems.append(f"down.sh failed: {first.stderr[-3000:]}")
        if second.returncode != 0:
            problems.append(f"second down.sh failed: {second.stderr[-3000:]}")
        if json.loads(left.stdout or "{}"):
            problems.append(f"left behind: {left.stdout}")
        if missing := sentinels.missing(client):
            problems.append(f"down.sh removed what is not the stack's: {missing}")
        assert not problems, "\n".join(problems)
    finally:
        sentinels.remove(client)


# --------------------------------------------------------------------------- helpers for tests


def submit(http: httpx.Client, job: dict[str, Any]) -> dict[str, Any]:
    resp = http.post("/v1/jobs", json=job)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def wait_job(http: httpx.Client, job_id: str, timeout: float = 180.0) -> dict[str, Any]:
    terminal = {"succeeded", "failed", "cancelled"}

    def done() -> dict[str, Any] | None:
        job = http.get(f"/v1/jobs/{job_id}").raise_for_status().json()
        return dict(job) if job["status"] in terminal else None

    return dict(wait_for(done, timeout=timeout, interval=0.5, message=f"job {job_id} to end"))


def follow_sse(http: httpx.Client, path: str, timeout: float = 180.0) -> list[sse.Event]:
    """Read a Server-Sent Events stream to its end, with the client's own parser."""
    events: list[sse.Event] = []
    deadline = time.monotonic() + timeout
    parser = sse.Parser()
    with http.stream(
        "GET",
        path,
        headers={"Accept": "text/event-stream"},
        timeout=httpx.Timeout(15.0, read=60.0),
    ) as resp:
        assert resp.status_code == 200, resp.read().decode()
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in sse.lines(resp.iter_bytes()):
            assert time.monotonic() < deadline, f"SSE stream still open after {timeout}s"
            event = parser.feed(line)
            if event is not None:
                events.append(event)
    return events


def service_tasks(client: docker.DockerClient, service: str) -> list[dict[str, Any]]:
    return list(client.services.get(service).tasks(filters={"desired-state": "running"}))


def running_containers(client: docker.DockerClient, service: str) -> set[str]:
    ids = set()
    for task in service_tasks(client, service):
        if task["Status"]["State"] == "running":
            ids.add(task["Status"]["ContainerStatus"]["ContainerID"])
    return ids


def healthy(client: docker.DockerClient, service: str, replicas: int) -> bool:
    ids = running_containers(client, service)
    if len(ids) != replicas:
        return False
    for cid in ids:
        state = client.api.inspect_container(cid)["State"]
        if state.get("Health", {}).get("Status", "healthy") != "healthy":
            return False
    return True
