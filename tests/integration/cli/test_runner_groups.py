"""The CLI and runner groups: a job for a group that is down is accepted and ``homerun get``
says what its task waits for; a runs_on no group has is refused with the groups listed."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from core.settings import Settings
from tests.conftest import wait_for
from tests.integration.cli.support import System, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The deployment has a bigdisk group, but only the default runner runs here.
    return replace(settings, runner_groups=("runner=", "big=bigdisk"))


def test_get_says_what_a_task_waits_for_and_submit_shows_the_refusal(system: System) -> None:
    job_file = system.tmp / "job.json"
    job_file.write_text(
        json.dumps(
            {
                "tasks": [
                    {"name": "here", "type": "shell", "payload": {"script": "echo ok"}},
                    {
                        "name": "there",
                        "type": "shell",
                        "payload": {"script": "echo big"},
                        "runs_on": ["bigdisk"],
                        "resources": {"cpus": 0.5},
                    },
                ]
            }
        )
    )
    submitted = run_cli(system, "submit", "-f", str(job_file))
    assert submitted.code == 0, submitted.stderr
    (job_id,) = submitted.text

    def here_done() -> bool:
        got = run_cli(system, "get", job_id, "--json")
        tasks = {t["name"]: t for t in json.loads("\n".join(got.text))["tasks"]}
        return bool(tasks["here"]["status"] == "succeeded")

    wait_for(here_done, timeout=60, interval=0.3, message="the unlabelled task")
    lines = run_cli(system, "get", job_id).text
    there = next(line for line in lines if line.split()[0] == "there")
    assert there.split()[1] == "queued"
    assert there.endswith("(waiting for a runner with labels [bigdisk])")
    here = next(line for line in lines if line.split()[0] == "here")
    assert "waiting" not in here

    job_file.write_text(
        json.dumps(
            {"tasks": [{"type": "shell", "payload": {"script": "true"}, "runs_on": ["gpu"]}]}
        )
    )
    refused = run_cli(system, "submit", "-f", str(job_file))
    assert refused.code != 0
    assert "no runner group of this deployment has all of the labels [gpu]" in refused.stderr
    assert "big [bigdisk]" in refused.stderr
