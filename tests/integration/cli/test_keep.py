"""``homerun keep JOB [--off]`` (``PATCH /v1/jobs/{id}`` with ``keep``), and what a re-run
of a kept job is: not kept (docs/api.md, "Retention and keep")."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.cli.support import System, run_cli

pytestmark = pytest.mark.integration

JOB = {"name": "keep me", "tasks": [{"name": "t", "type": "shell", "payload": {"script": "true"}}]}


def test_keep_sets_and_clears_a_jobs_keep_and_a_rerun_is_not_kept(system: System) -> None:
    with system.client() as client:
        job = client.submit(JOB)
        assert job.keep is False
        assert system.wait_job(job.id) == "succeeded"

        kept = run_cli(system, "keep", job.id)
        assert kept.code == 0, kept.stderr
        assert kept.stdout.strip() == f"job {job.id}: kept (retention never deletes it)"
        assert client.get_job(job.id).keep is True
        shown = run_cli(system, "get", job.id)
        assert shown.code == 0 and "  kept (retention never deletes it)" in shown.text
        # Idempotent; --json prints the job as the API answered.
        again = run_cli(system, "keep", job.id, "--json")
        assert again.code == 0 and '"keep": true' in again.stdout

        # A re-run is a new job under its token's retention: the mark stays with the
        # original, or re-running a kept job again and again would keep every run forever.
        rerun = run_cli(system, "rerun", job.id)
        assert rerun.code == 0, rerun.stderr
        (rerun_id,) = rerun.text
        assert client.get_job(rerun_id).keep is False
        assert client.get_job(job.id).keep is True

        off = run_cli(system, "keep", job.id, "--off")
        assert off.code == 0, off.stderr
        assert "not kept" in off.stdout
        assert client.get_job(job.id).keep is False
        assert not [line for line in run_cli(system, "get", job.id).text if "kept" in line]

    missing = run_cli(system, "keep", str(uuid.uuid4()))
    assert missing.code == 1 and "not_found" in missing.stderr, missing.stderr
