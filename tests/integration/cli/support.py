"""A real homerun for the CLI tests, and the CLI run as a user runs it.

The API, a runner (Docker) and a notifier each run as ``homerun <command>`` in a process
of their own over real Postgres and Redis; the CLI runs as a process too, configured only
through its environment (HOMERUN_URL / HOMERUN_TOKEN, HOMERUN_DATABASE_URL for ``token``).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
from databases import Database

from core.settings import Settings
from homerun.client import Client, ClientConfig
from runners.containers import LABEL_INSTANCE
from tests.conftest import wait_for
from tests.integration.events.harness import (
    ApiProcess,
    ServiceProcess,
    make_token,
    service_env,
    settings_for,
)

SHELL_IMAGE = "homerun/task-shell:0.1.0"


@dataclass
class System:
    api: ApiProcess
    token: str
    db: Database
    tmp: Path
    settings: Settings
    services: list[ServiceProcess] = field(default_factory=list)

    def logs(self) -> str:
        return "\n".join(f"--- {s.log_path.name}\n{s.output()}" for s in [self.api, *self.services])

    def client(self, token: str | None = None) -> Client:
        """The client library in this process, for waiting on what the CLI started."""
        return Client(ClientConfig(self.api.url, token or self.token, "test"))

    def wait_job(self, job_id: str, timeout: float = 60.0) -> str:
        """The job's terminal status, once it has one."""
        with self.client() as client:

            def ended() -> str | None:
                status = client.get_job(job_id).status
                return status.value if status.terminal else None

            ended_as: str = wait_for(ended, timeout, 0.1, f"job {job_id} to end\n{self.logs()}")
            return ended_as


@contextlib.asynccontextmanager
async def running_system(
    migrated_database_url: str,
    queue_redis_url: str,
    events_redis_url: str,
    tmp_path: Path,
    engine: docker.DockerClient,
) -> AsyncIterator[System]:
    instance = f"test-cli-{uuid.uuid4().hex[:10]}"
    settings: Settings = settings_for(migrated_database_url, queue_redis_url, events_redis_url)
    db = Database(migrated_database_url)
    await db.connect()
    token = await make_token(db, "cli")
    api = ApiProcess(settings, tmp_path / "api.log")
    running = System(api, token.plaintext, db, tmp_path, settings)
    try:
        (tmp_path / "work").mkdir()
        runner_env = service_env(
            settings,
            HOMERUN_RUNNER_ID=f"{instance}-runner",
            HOMERUN_INSTANCE=instance,
            HOMERUN_WORK_DIR=str(tmp_path / "work"),
            HOMERUN_RECONCILE_SECONDS="0.5",
            HOMERUN_HEARTBEAT_SECONDS="0.5",
            HOMERUN_LEASE_SECONDS="5",
        )
        running.services.append(ServiceProcess("runner", runner_env, tmp_path / "runner.log"))
        running.services.append(
            ServiceProcess("notifier", service_env(settings), tmp_path / "notifier.log")
        )
        api.wait_ready()
        yield running
    finally:
        for service in [*running.services, api]:
            service.stop()
        await db.disconnect()
        for container in engine.containers.list(
            all=True, filters={"label": f"{LABEL_INSTANCE}={instance}"}
        ):
            container.remove(force=True)


@dataclass
class CliRun:
    code: int
    lines: list[tuple[float, str]]  # (wall-clock time the line was read, line)
    stderr: str

    @property
    def text(self) -> list[str]:
        return [line for _, line in self.lines]

    @property
    def stdout(self) -> str:
        return "".join(line + "\n" for line in self.text)

    def when(self, line: str) -> float:
        return next(t for t, text in self.lines if text == line)


def run_cli(
    system: System,
    *args: str,
    token: str | None = None,
    database: bool = False,
    timeout: float = 120.0,
) -> CliRun:
    """``homerun <args>`` as a process; ``database`` also gives it HOMERUN_DATABASE_URL."""
    env = service_env(
        system.settings if database else settings_for("", "", ""),
        HOMERUN_URL=system.api.url,
        HOMERUN_TOKEN=token or system.token,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "homerun.cli", *args],
        cwd=system.tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[tuple[float, str]] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append((time.time(), line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert proc.stdout is not None and proc.stderr is not None
    try:
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            reader.join(5)
            hung = f"the CLI hung; it printed {lines}\n{proc.stderr.read()}\n{system.logs()}"
            raise AssertionError(hung) from None
        reader.join(5)
        return CliRun(code, lines, proc.stderr.read())
    finally:
        # On every path: a pipe left to the garbage collector fails some later test with
        # a ResourceWarning.
        proc.stdout.close()
        proc.stderr.close()
