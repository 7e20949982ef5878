"""The plaintext-nowhere test: a job prints and writes its secret every way it can, and
the value is found in none of the places homerun keeps or hands out anything.

A whole homerun (api, runner, notifier processes) on a primary with a streaming replica,
private Redis servers and the real Docker engine. The task reads its secret from
``/run/secrets``, prints it whole, in base64 at three alignments, split across two writes,
on stdout and stderr, and writes it into its output JSON; meanwhile the test inspects its
container. Then: pg_dump of primary and replica, every key of the streams Redis (DUMP and
the values read out), every API answer, the job's SSE stream with its live log lines, the
webhook body, ``docker inspect`` of the container, and every service's log.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import docker
import httpx
import pytest
import redis

from core.sealing import generate_line
from core.settings import Settings
from core.tokens import hash_token
from runners import identity
from runners.containers import LABEL_INSTANCE
from tests.conftest import free_port, wait_for
from tests.harness.services import Services
from tests.harness.stack import Stack, homerun_stack
from tests.harness.stores import redis_server
from tests.integration.api.conftest import ReplicatedDb
from tests.integration.events.harness import webhook_receiver
from tests.integration.replica import PG_BIN, _as_postgres

pytestmark = pytest.mark.integration

SHM = Path("/dev/shm")
NAME = "backup-key"


def forms(value: bytes) -> list[bytes]:
    """What the value looks like wherever it could hide: itself, and its base64."""
    found = [value, base64.b64encode(value), base64.urlsafe_b64encode(value)]
    # Inside a longer base64 text, at each alignment (the stable middle of the encoding).
    for skip in (1, 2):
        body = value[skip:]
        found.append(base64.b64encode(body[: len(body) // 3 * 3]))
    return found


def leaks(where: str, data: bytes, value: bytes) -> list[str]:
    return [f"{where}: {form[:12]!r}..." for form in forms(value) if form in data]


SCRIPT = r"""
v=$(cat /run/secrets/backup-key)
echo "whole: $v"
printf '%s' "$v" | base64
printf 'x%s' "$v" | base64
printf 'xy%s' "$v" | base64 -w0; echo
echo "stderr: $v" >&2
head -c 11 /run/secrets/backup-key; sleep 0.3; tail -c +12 /run/secrets/backup-key; echo
echo "in env: $(env | grep -c "$v")"
stat -c 'mode=%a uid=%u' /run/secrets/backup-key
touch /run/secrets/other 2>/dev/null || echo "read-only: yes"
printf '{"leak": "%s", "b64": "%s"}' "$v" "$(printf '%s' "$v" | base64 -w0)" > /homerun/output.json
sleep 2
"""


@pytest.fixture(scope="module")
def docker_client() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture
def secrets_dir() -> Iterator[Path]:
    path = SHM / f"homerun-secrets-test-{uuid.uuid4().hex[:8]}"
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


@pytest.fixture
def stack(
    replicated_db: ReplicatedDb, services: Services, tmp_path: Path, secrets_dir: Path
) -> Iterator[Stack]:
    with redis_server("secrets-queue") as queue, redis_server("secrets-events") as events:
        name = f"homerun-secrets-{uuid.uuid4().hex[:8]}"
        settings = Settings(
            database_url=replicated_db.primary,
            database_replica_url=replicated_db.replica,
            queue_redis_url=queue.url,
            events_redis_url=events.url,
            host="127.0.0.1",
            port=free_port(),
            runner_id=name,
            instance=name,
            work_dir=str(tmp_path / "work"),
            secrets_dir=str(secrets_dir),
            secrets_keyring=generate_line("k1"),
            rate_limit_per_second=10_000.0,
            rate_limit_burst=10_000,
            webhook_allow_private=True,
            notifier_poll_seconds=0.5,
        )
        with homerun_stack(settings, services) as running:
            yield running


def pg_dump(dsn: str) -> bytes:
    proc = subprocess.run(
        _as_postgres([str(PG_BIN / "pg_dump"), "--no-owner", dsn]),
        capture_output=True,
        timeout=60,
        check=True,
    )
    return proc.stdout


def _bytes(items: Any) -> list[bytes]:
    """Flatten what redis-py answers (bytes, lists, tuples, dicts) into its bytes."""
    if items is None:
        return []
    if isinstance(items, bytes):
        return [items]
    if isinstance(items, str):
        return [items.encode()]
    if isinstance(items, dict):
        return [b for kv in items.items() for b in _bytes(list(kv))]
    return [b for item in items for b in _bytes(item)]


def redis_everything(url: str) -> bytes:
    """Every key of a Redis: its DUMP and its values read out (DUMP may compress)."""
    client: Any = redis.Redis.from_url(url)
    readers = {
        b"stream": lambda key: client.xrange(key),
        b"string": lambda key: client.get(key),
        b"hash": lambda key: client.hgetall(key),
        b"list": lambda key: client.lrange(key, 0, -1),
        b"zset": lambda key: client.zrange(key, 0, -1),
        b"set": lambda key: client.smembers(key),
    }
    try:
        out: list[bytes] = []
        for key in client.scan_iter(count=1000):
            out += _bytes([key, client.dump(key)])
            read = readers.get(client.type(key))
            if read is not None:
                out += _bytes(read(key))
        return b"\n".join(out)
    finally:
        client.close()


def test_a_secret_printed_every_way_is_found_nowhere(
    stack: Stack, docker_client: docker.DockerClient
) -> None:
    value = f"plain-{uuid.uuid4().hex}".encode()
    hooks: list[bytes] = []
    port = free_port()
    answers: list[bytes] = []
    client = httpx.Client(
        base_url=stack.url, headers={"Authorization": f"Bearer {stack.token}"}, timeout=30
    )

    def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = client.request(method, path, **kwargs)
        answers.append(response.content)
        return response

    def receive(path: str, headers: dict[str, str], body: bytes) -> int:
        hooks.append(body)
        return 200

    with webhook_receiver(port, receive), client:
        assert call("PUT", f"/v1/secrets/{NAME}", json={"value": value.decode()}).is_success
        submitted = call(
            "POST",
            "/v1/jobs",
            json={
                "callback_url": f"http://127.0.0.1:{port}/hook",
                "tasks": [
                    {
                        "name": "leaky",
                        "type": "shell",
                        "payload": {"script": SCRIPT},
                        "secrets": [NAME],
                    }
                ],
            },
        )
        assert submitted.status_code == 201, submitted.text
        job_id = submitted.json()["id"]

        # While it runs: its container's configuration, as `docker inspect` shows it.
        def running_container() -> Any:
            found = docker_client.containers.list(
                filters={"label": f"{LABEL_INSTANCE}={stack.instance}"}
            )
            return found[0] if found else None

        container = wait_for(running_container, 60, message="the task's container")
        inspected = json.dumps(docker_client.api.inspect_container(container.id)).encode()
        mounts = json.loads(inspected)["Mounts"]
        assert any(m["Destination"] == "/run/secrets" and not m["RW"] for m in mounts), mounts

        def finished() -> bool:
            return call("GET", f"/v1/jobs/{job_id}").json()["status"] in {"succeeded", "failed"}

        wait_for(finished, 60, message="the job to finish")
        job = call("GET", f"/v1/jobs/{job_id}").json()
        assert job["status"] == "succeeded", job
        task_id = job["tasks"][0]["id"]
        task = call("GET", f"/v1/jobs/{job_id}/tasks/{task_id}").json()
        attempt = call("GET", f"/v1/jobs/{job_id}/tasks/{task_id}/attempts/1").json()
        for path in ("/v1/jobs", "/v1/secrets", f"/v1/jobs/{job_id}/tasks/{task_id}"):
            call("GET", path)
        with client.stream("GET", f"/v1/jobs/{job_id}/events", timeout=30) as sse:
            frames = b"".join(sse.iter_bytes())
        wait_for(lambda: bool(hooks), 30, message="the webhook")

    stdout = attempt["result"]["stdout"]
    # The task did see its secret where it should, as it should, and nowhere else.
    uid = identity.task_uid(_token_id(stack))
    assert f"mode=400 uid={uid}" in stdout, stdout
    assert "in env: 0" in stdout and "read-only: yes" in stdout
    # Every printed form became the marker: whole, 3 base64 alignments, split, stderr.
    assert stdout.count(f"[redacted:{NAME}]") >= 5, stdout
    assert f"stderr: [redacted:{NAME}]" in attempt["result"]["stderr"]
    assert task["output"] == {"leak": f"[redacted:{NAME}]", "b64": f"[redacted:{NAME}]"}
    assert f"[redacted:{NAME}]".encode() in frames  # live log lines are in the stream

    problems: list[str] = []
    problems += leaks("docker inspect", inspected, value)
    for n, answer in enumerate(answers):
        problems += leaks(f"API answer {n}", answer, value)
    problems += leaks("SSE frames", frames, value)
    for body in hooks:
        problems += leaks("webhook body", body, value)
    problems += leaks("pg_dump primary", pg_dump(stack.settings.database_url), value)
    assert stack.settings.database_replica_url is not None
    wait_for(
        lambda: b"[redacted:" in pg_dump(stack.settings.database_replica_url or ""),
        30,
        message="the result on the replica",
    )
    problems += leaks("pg_dump replica", pg_dump(stack.settings.database_replica_url), value)
    problems += leaks("streams Redis", redis_everything(stack.settings.events_redis_url), value)
    problems += leaks("queue Redis", redis_everything(stack.settings.queue_redis_url), value)
    for process in stack.services:
        problems += leaks(f"{process.name} log", process.output().encode(), value)
    assert not problems, problems
    # The attempt's secret files are gone with it.
    assert not list(Path(stack.settings.secrets_dir).glob(f"*/{task_id}.*"))


def _token_id(stack: Stack) -> str:
    async def lookup() -> str:
        conn = await asyncpg.connect(stack.settings.database_url)
        try:
            return str(
                await conn.fetchval(
                    "SELECT id FROM tokens WHERE hash = $1", hash_token(stack.token)
                )
            )
        finally:
            await conn.close()

    return asyncio.run(lookup())
