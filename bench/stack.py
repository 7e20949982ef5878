"""A private homerun for the benchmark: its own Redis servers, database and processes.

The API, the runner and the notifier run as the ``homerun`` console script in subprocesses,
exactly as they run in production, against a database and two redis-servers that exist only
for this run. Nothing shared on the machine is touched, and everything is removed on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import docker
import docker.errors
import httpx

from runners.containers import LABEL_INSTANCE

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
HOMERUN = str(Path(sys.executable).with_name("homerun"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (OSError, httpx.HTTPError) as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}") from last


@dataclass
class Process:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 20.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass(frozen=True)
class Stack:
    url: str  # the API's base URL
    token: str
    runner_id: str
    workdir: Path
    processes: Mapping[str, Process]
    env: Mapping[str, str]


def _redis(stack: ExitStack, workdir: Path, name: str) -> str:
    port = free_port()
    data = workdir / f"redis-{name}"
    data.mkdir()
    proc = subprocess.Popen(
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(data),
        ],
        stdout=subprocess.DEVNULL,
    )

    def stop() -> None:
        proc.terminate()
        proc.wait(10)

    stack.callback(stop)

    def answers() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    wait_until(answers, 10, f"redis-server {name}")
    return f"redis://127.0.0.1:{port}/0"


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _database(stack: ExitStack, run_id: str) -> str:
    name = f"homerun_bench_{run_id}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    stack.callback(lambda: asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')))
    return f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"


async def _prepare(database_url: str) -> str:
    from databases import Database

    from core.migrate import migrate
    from core.tokens import create_token

    await migrate(database_url)
    db = Database(database_url)
    await db.connect()
    try:
        _, token = await create_token(db, "bench")
    finally:
        await db.disconnect()
    return token


def _spawn(stack: ExitStack, workdir: Path, name: str, env: dict[str, str]) -> Process:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([HOMERUN, name], env=env, stdout=out, stderr=subprocess.STDOUT)
    process = Process(name, proc, log)
    stack.callback(process.stop)
    return process


def instance_containers(instance: str) -> list[str]:
    """Ids of the task containers of one homerun instance (its runners label every one)."""
    client = docker.APIClient()
    try:
        found = client.containers(all=True, filters={"label": f"{LABEL_INSTANCE}={instance}"})
        return [str(c["Id"]) for c in found]
    finally:
        client.close()


def _remove_containers(instance: str) -> None:
    """Remove whatever a runner of this stack left on the engine (there should be nothing)."""
    client = docker.APIClient()
    try:
        for container_id in instance_containers(instance):
            with contextlib.suppress(docker.errors.NotFound):
                client.remove_container(container_id, force=True, v=True)
    finally:
        client.close()


@contextmanager
def homerun_processes(
    database_url: str,
    queue_redis_url: str,
    events_redis_url: str,
    *,
    workdir: Path,
    runner_id: str,
    runner_concurrency: int = 4,
    services: Sequence[str] = ("api", "runner", "notifier"),
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[Stack]:
    """Migrate the database, make a token, run ``homerun <service>`` for each service.

    On exit the processes get SIGTERM (their graceful shutdown), and any container still
    labelled with ``runner_id`` is removed, so a crashed runner leaves nothing behind either.
    """
    token = asyncio.run(_prepare(database_url))
    port = free_port()
    env = {
        # Settings come from the environment only: start from a clean HOMERUN_* slate.
        **{k: v for k, v in os.environ.items() if not k.startswith("HOMERUN_")},
        "HOMERUN_DATABASE_URL": database_url,
        "HOMERUN_QUEUE_REDIS_URL": queue_redis_url,
        "HOMERUN_EVENTS_REDIS_URL": events_redis_url,
        "HOMERUN_HOST": "127.0.0.1",
        "HOMERUN_PORT": str(port),
        "HOMERUN_RUNNER_ID": runner_id,
        # Labels this stack's containers: a runner's start-up sweep touches only its own.
        "HOMERUN_INSTANCE": runner_id,
        "HOMERUN_WORK_DIR": str(workdir / "work"),
        "HOMERUN_RUNNER_CONCURRENCY": str(runner_concurrency),
        # Measure the pipeline, not the per-token rate limit.
        "HOMERUN_RATE_LIMIT_PER_SECOND": "10000",
        "HOMERUN_RATE_LIMIT_BURST": "10000",
        **(extra_env or {}),
    }
    with ExitStack() as stack:
        stack.callback(_remove_containers, runner_id)
        processes = {name: _spawn(stack, workdir, name, env) for name in services}
        url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"}

        def api_ready() -> bool:
            for p in processes.values():
                p.check()
            return httpx.get(f"{url}/v1/task-types", headers=headers, timeout=2).status_code == 200

        try:
            wait_until(api_ready, 60, "the API to answer")
            yield Stack(url, token, runner_id, workdir, processes, env)
        except BaseException:
            for p in processes.values():
                print(f"--- homerun {p.name} log (tail) ---\n{p.tail()}", file=sys.stderr)
            raise


@contextmanager
def private_stack(
    runner_concurrency: int = 4, extra_env: Mapping[str, str] | None = None
) -> Iterator[Stack]:
    """Everything private: a database, two redis-servers, and the processes on top."""
    run_id = uuid.uuid4().hex[:10]
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="homerun-bench-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        database_url = _database(stack, run_id)
        queue_url = _redis(stack, workdir, "queue")
        events_url = _redis(stack, workdir, "events")
        yield stack.enter_context(
            homerun_processes(
                database_url,
                queue_url,
                events_url,
                workdir=workdir,
                runner_id=f"homerun-bench-{run_id}",
                runner_concurrency=runner_concurrency,
                extra_env=extra_env,
            )
        )
