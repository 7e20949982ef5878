"""``homerun submit ... --watch`` against the real system: API, runner (Docker), notifier.

Each service runs as ``homerun <command>`` in its own process; the CLI runs as a process
too, configured only through HOMERUN_URL / HOMERUN_TOKEN, exactly as a user would run it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import docker
import pytest
from databases import Database

from core.settings import Settings
from homerun.client import TOKEN_VAR, URL_VAR
from tests.harness.services import ServiceProcess, Services, clean_env
from tests.harness.stack import remove_containers
from tests.integration.events.harness import make_token, tuned_for_events

pytestmark = pytest.mark.integration

SHELL_IMAGE = "homerun/task-shell:0.1.0"


@pytest.fixture(scope="module")
def engine() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    try:
        client.images.get(SHELL_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"{SHELL_IMAGE} is missing: run `make images` first")
    yield client
    client.close()


@dataclass
class System:
    api: ServiceProcess
    token: str
    db: Database
    tmp: Path
    services: Services

    def logs(self) -> str:
        return "\n".join(f"--- {s.log_path.name}\n{s.output()}" for s in self.services)


@pytest.fixture
async def system(
    settings: Settings,
    services: Services,
    tmp_path: Path,
    engine: docker.DockerClient,
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
        yield System(api, token.plaintext, db, tmp_path, services)
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

    def when(self, line: str) -> float:
        return next(t for t, text in self.lines if text == line)


def run_cli(system: System, *args: str, timeout: float = 120.0) -> CliRun:
    env = clean_env({URL_VAR: system.api.url, TOKEN_VAR: system.token})
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
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"the CLI hung; it printed {lines}\n{system.logs()}") from None
    reader.join(5)
    assert proc.stdout is not None and proc.stderr is not None
    stderr = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    return CliRun(code, lines, stderr)


async def finished_at(db: Database, job_id: str, task: str) -> float:
    value: datetime = await db.fetch_val(
        "SELECT finished_at FROM tasks WHERE job_id = :j AND name = :n", {"j": job_id, "n": task}
    )
    return value.timestamp()


async def test_submit_watch_shows_live_progress_and_logs(system: System) -> None:
    script = "for i in 1 2 3; do echo line $i; sleep 0.4; done; echo warning >&2"
    run = run_cli(system, "submit", "--script", script, "--watch")
    assert run.code == 0, f"{run.text}\n{run.stderr}\n{system.logs()}"
    job_id = run.text[0].removeprefix("submitted job ")
    uuid.UUID(job_id)
    out = run.text
    expected_in_order = [
        f"job {job_id} queued: 1 task(s)",
        "main: running (attempt 1)",
        "  [0/1] ▶ main running",
        "main | line 1",
        "main | line 2",
        "main | line 3",
        "main ! warning",
        "main: succeeded (exit 0)",
        "  [1/1] ✓ main succeeded",
        f"job {job_id} succeeded",
    ]
    positions = [out.index(line) for line in expected_in_order]
    assert positions == sorted(positions), out
    assert out[-1] == f"job {job_id} succeeded"
    # Live: the first line was on screen well before the task ended.
    ended = await finished_at(system.db, job_id, "main")
    assert run.when("main | line 1") < ended - 0.5, (run.when("main | line 1"), ended)


async def test_watch_exits_non_zero_when_the_job_fails(system: System) -> None:
    job = {
        "name": "two-step",
        "tasks": [
            {"name": "prepare", "type": "shell", "payload": {"script": "echo ready"}},
            {
                "name": "explode",
                "type": "shell",
                "payload": {"script": "echo about to fail; exit 3"},
                "depends_on": ["prepare"],
                "max_attempts": 1,
            },
        ],
    }
    path = system.tmp / "job.json"
    path.write_text(json.dumps(job))
    run = run_cli(system, "submit", "-f", str(path), "--watch")
    assert run.code == 1, f"{run.text}\n{run.stderr}\n{system.logs()}"
    out = run.text
    job_id = out[0].removeprefix("submitted job ")
    for line in (
        "prepare | ready",
        "prepare: succeeded (exit 0)",
        "explode | about to fail",
        "  [2/2] ✓ prepare succeeded · ✗ explode failed",
        f"job {job_id} failed",
    ):
        assert line in out, out
    assert any(line.startswith("explode: failed") for line in out), out

    # The other client commands agree with what the watch showed.
    got = run_cli(system, "get", job_id)
    assert got.code == 0 and got.text[0].startswith(f"{job_id}  failed  two-step")
    logs = run_cli(system, "logs", job_id, "explode")
    assert logs.code == 0 and "about to fail" in logs.text, logs.text
    listed = run_cli(system, "list", "--status", "failed")
    assert listed.code == 0 and any(line.startswith(job_id) for line in listed.text)
    types = run_cli(system, "task-types")
    assert types.code == 0 and any(line.startswith("shell") for line in types.text)
