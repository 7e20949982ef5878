"""``homerun submit ... --watch`` against the real system: API, runner (Docker), notifier.

Each service runs as ``homerun <command>`` in its own process; the CLI runs as a process
too, configured only through HOMERUN_URL / HOMERUN_TOKEN, exactly as a user would run it
(``tests/integration/cli/support.py``).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import pytest
from databases import Database

from tests.integration.cli.support import System, run_cli

pytestmark = pytest.mark.integration


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
