"""``homerun schedule ...`` round trip against a real API, runner and notifier (whose
scheduler fires the ticks)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.integration.cli.support import CliRun, System, run_cli

pytestmark = pytest.mark.integration


def ok(run: CliRun, system: System) -> list[str]:
    assert run.code == 0, f"exit {run.code}\n{run.stdout}\n{run.stderr}\n{system.logs()}"
    return run.text


def as_json(run: CliRun, system: System) -> Any:
    ok(run, system)
    return json.loads(run.stdout)


def test_schedule_create_fire_pause_trigger_rm(system: System) -> None:
    created = as_json(
        run_cli(
            system,
            *("schedule", "create", "every-2s", "--cron", "*/2 * * * * *"),
            *("--script", "echo tick", "--overlap", "forbid", "--json"),
        ),
        system,
    )
    sid = created["id"]
    assert created["overlap"] == "forbid" and len(created["next_fire_times"]) == 5
    assert created["job"]["tasks"][0]["payload"] == {"script": "echo tick"}

    # The notifier's scheduler fires it; the runner runs the job.
    def fired() -> str | None:
        lines = ok(run_cli(system, "list", "--schedule", sid), system)
        return lines[-1].split()[0] if lines else None

    first = wait_for(fired, 30, 0.2, f"a job of schedule {sid}\n{system.logs()}")
    assert system.wait_job(first) == "succeeded"
    shown = ok(run_cli(system, "schedule", "get", sid), system)
    assert shown[0].startswith(f"{sid}  active") and "every-2s" in shown[0]
    assert any(line.startswith("  tick") and first in line for line in shown)

    paused = as_json(run_cli(system, "schedule", "pause", sid, "--json"), system)
    assert paused["paused"] is True

    def skipped_as_paused() -> bool:
        view = as_json(run_cli(system, "schedule", "get", sid, "--json"), system)
        return any(t["reason"] == "paused" for t in view["recent_ticks"])

    wait_for(skipped_as_paused, 30, 0.2, f"a paused tick\n{system.logs()}")

    (manual,) = ok(run_cli(system, "schedule", "trigger", sid), system)
    assert system.wait_job(manual) == "succeeded"
    view = as_json(run_cli(system, "schedule", "get", sid, "--json"), system)
    assert any(t["manual"] and t["job_id"] == manual for t in view["recent_ticks"])
    ok(run_cli(system, "schedule", "resume", sid), system)
    listed = ok(run_cli(system, "schedule", "list"), system)
    assert [line.split()[0] for line in listed] == [sid]

    assert ok(run_cli(system, "schedule", "rm", sid), system) == [f"deleted schedule {sid}"]
    gone = run_cli(system, "schedule", "get", sid)
    assert gone.code == 1 and "no schedule" in gone.stderr


def test_schedule_create_refuses_a_bad_cron_naming_the_field(system: System) -> None:
    run = run_cli(system, "schedule", "create", "bad", "--cron", "61 * * * *", "--script", "true")
    assert run.code == 1 and "body.cron" in run.stderr and "Bad minute" in run.stderr
    run = run_cli(
        system,
        "schedule",
        "create",
        "bad",
        "--cron",
        "@daily",
        "--timezone",
        "Nowhere",
        "--script",
        "true",
    )
    assert run.code == 1 and "body.timezone" in run.stderr
    assert ok(run_cli(system, "schedule", "list"), system) == []
