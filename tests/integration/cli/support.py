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
from dataclasses import dataclass, replace
from pathlib import Path

from databases import Database

from core.settings import Settings
from homerun.client import TOKEN_VAR, URL_VAR, Client, ClientConfig
from tests.conftest import wait_for
from tests.harness.services import ServiceProcess, Services, clean_env
from tests.harness.stack import remove_containers
from tests.integration.events.harness import make_token, tuned_for_events

SHELL_IMAGE = "homerun/task-shell:0.1.0"


@dataclass
class System:
    api: ServiceProcess
    token: str
    db: Database
    tmp: Path
    settings: Settings
    services: Services

    def logs(self) -> str:
        return self.services.logs()

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
    settings: Settings, services: Services, tmp_path: Path
) -> AsyncIterator[System]:
    instance = f"test-cli-{uuid.uuid4().hex[:10]}"
    settings = tuned_for_events(settings)
    db = Database(settings.database_url)
    await db.connect()
    token = await make_token(db, "cli")
    try:
        # The API starts first and is waited for last: the three boot side by side.
        api = services.api(settings, wait=False)
        (tmp_path / "work").mkdir()
        runner = replace(
            settings,
            runner_id=f"{instance}-runner",
            instance=instance,
            work_dir=str(tmp_path / "work"),
            reconcile_seconds=0.5,
            heartbeat_seconds=0.5,
            lease_seconds=5.0,
        )
        services.runner(runner)
        services.notifier(settings)
        api.wait_ready()
        yield System(api, token.plaintext, db, tmp_path, api.settings, services)
    finally:
        services.stop_all()
        await db.disconnect()
        remove_containers(instance)


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
    server = system.settings.to_env(system.tmp / "cli.secrets") if database else {}
    env = clean_env({**server, URL_VAR: system.api.url, TOKEN_VAR: token or system.token})
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
