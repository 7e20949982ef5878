"""Re-runs (``POST /v1/jobs/{id}/rerun``, ``homerun rerun``) with a real runner behind them.

The pipeline's third task fails exactly when the second ran in the same job: its input
names the job that produced it. So in a re-run from failed, where the second task is taken
over from the original rather than run, the third succeeds, which also proves that the
taken-over output reached it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.integration.cli.support import CliRun, System, run_cli

pytestmark = pytest.mark.integration

PIPELINE = {
    "name": "four steps",
    "labels": {"team": "rerun"},
    "tasks": [
        {
            "name": "t1",
            "type": "shell",
            "payload": {
                "script": 'printf \'{"job": "%s"}\' "$HOMERUN_JOB_ID" > /homerun/output.json'
            },
        },
        {
            "name": "t2",
            "type": "shell",
            "depends_on": ["t1"],
            "payload": {"script": "cat /homerun/inputs/t1.json > /homerun/output.json"},
        },
        {
            "name": "t3",
            "type": "shell",
            "depends_on": ["t2"],
            "max_attempts": 1,
            "payload": {
                "script": 'if grep -q "$HOMERUN_JOB_ID" /homerun/inputs/t2.json; then\n'
                "  echo 't2 ran in this very job' >&2; exit 1\nfi\n"
                "echo '{\"ok\": true}' > /homerun/output.json\n"
            },
        },
        {
            "name": "t4",
            "type": "shell",
            "depends_on": ["t2", "t3"],
            "payload": {"script": "cat /homerun/inputs/t2.json > /homerun/output.json"},
        },
    ],
}


def ok(run: CliRun, system: System) -> list[str]:
    assert run.code == 0, f"exit {run.code}\n{run.stdout}\n{run.stderr}\n{system.logs()}"
    return run.text


def call(system: System, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {system.token}"}
    return httpx.request(method, system.api.url + path, headers=headers, timeout=10, **kwargs)


def job(system: System, job_id: str) -> dict[str, Any]:
    response = call(system, "GET", f"/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def tasks(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in view["tasks"]}


def test_rerun_from_failed_runs_only_what_failed_and_hands_over_outputs(system: System) -> None:
    (job_file := system.tmp / "pipeline.json").write_text(json.dumps(PIPELINE))
    (original,) = ok(run_cli(system, "submit", "-f", str(job_file)), system)
    assert system.wait_job(original) == "failed"
    before = tasks(job(system, original))
    assert {n: t["status"] for n, t in before.items()} == {
        "t1": "succeeded",
        "t2": "succeeded",
        "t3": "failed",
        "t4": "cancelled",
    }

    # Not finished yet, nothing to re-run, a bad from=, someone else's job: clear refusals.
    assert (
        call(system, "POST", f"/v1/jobs/{original}/rerun", params={"from": "x"}).status_code == 400
    )
    missing = call(system, "POST", f"/v1/jobs/{uuid.uuid4()}/rerun")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"

    (rerun,) = ok(run_cli(system, "rerun", original, "--failed"), system)
    assert system.wait_job(rerun) == "succeeded"
    after = job(system, rerun)
    assert after["rerun_of"] == original and after["labels"] == {"team": "rerun"}
    by_name = tasks(after)
    # Exactly t3 and t4 ran; t1 and t2 were taken over, with their outputs.
    assert {n: t["attempt_count"] for n, t in by_name.items()} == {
        "t1": 0,
        "t2": 0,
        "t3": 1,
        "t4": 1,
    }
    assert by_name["t1"]["reused_from"] == before["t1"]["id"]
    assert by_name["t2"]["reused_from"] == before["t2"]["id"]
    assert by_name["t3"]["reused_from"] is None and by_name["t4"]["reused_from"] is None
    assert by_name["t2"]["output"] == {"job": original}
    assert by_name["t4"]["output"] == {"job": original}  # t4 saw t2's output
    # Linked both ways.
    assert job(system, original)["reruns"] == [rerun]
    listed = call(system, "GET", "/v1/jobs", params={"rerun_of": original}).json()
    assert [j["id"] for j in listed["jobs"]] == [rerun]
    shown = ok(run_cli(system, "get", rerun), system)
    assert f"  re-run of {original}" in shown
    assert any(line.startswith("  t2") and before["t2"]["id"] in line for line in shown)

    nothing = run_cli(system, "rerun", rerun, "--failed")
    assert nothing.code == 1 and "409 nothing_to_rerun" in nothing.stderr, nothing.stderr

    # A whole re-run runs everything again: t2 runs in the new job, so t3 fails again.
    (whole,) = ok(run_cli(system, "rerun", original), system)
    assert system.wait_job(whole) == "failed"
    again = tasks(job(system, whole))
    assert {n: t["attempt_count"] for n, t in again.items()} == {"t1": 1, "t2": 1, "t3": 1, "t4": 0}
    assert all(t["reused_from"] is None for t in again.values())
    assert job(system, original)["reruns"] == [whole, rerun]  # newest first


def test_rerun_from_failed_waits_for_the_job_to_finish(system: System) -> None:
    body = {"tasks": [{"name": "slow", "type": "shell", "payload": {"script": "sleep 30"}}]}
    created = call(system, "POST", "/v1/jobs", json=body)
    assert created.status_code == 201, created.text
    running = created.json()["id"]
    refused = call(system, "POST", f"/v1/jobs/{running}/rerun", params={"from": "failed"})
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "job_unfinished"
    assert call(system, "POST", f"/v1/jobs/{running}/cancel").status_code == 202
    assert system.wait_job(running) == "cancelled"
    # Cancelled counts as not succeeded: a re-run from failed runs it.
    rerun = call(system, "POST", f"/v1/jobs/{running}/rerun", params={"from": "failed"})
    assert rerun.status_code == 201, rerun.text
    assert [t["status"] for t in rerun.json()["tasks"]] == ["queued"]
    assert call(system, "POST", f"/v1/jobs/{rerun.json()['id']}/cancel").status_code == 202
