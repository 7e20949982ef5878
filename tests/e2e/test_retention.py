"""Retention on the deployed stack: the notifiers' purger deletes a token's expired jobs,
and never one that is kept, whether by its body or after the fact (``PATCH``).

The session stack polls for expired jobs every 2 s (``--retention-poll-seconds``, its
conftest); a token of this test's own, made inside an API container with ``homerun token``
(the database is on the internal network only), gets a period of one second, so no other
test's jobs expire."""

from __future__ import annotations

import uuid
from typing import Any

import docker
import httpx

from tests.conftest import wait_for
from tests.e2e.conftest import Stack, running_containers, submit, wait_job

JOB = {"tasks": [{"name": "t", "type": "shell", "payload": {"script": "true"}}]}


def _homerun(client: docker.DockerClient, stack: Stack, *args: str) -> str:
    """``homerun ARGS`` inside an API container, with the service's own settings."""
    (api, *_) = running_containers(client, stack.service("api"))
    result = client.containers.get(api).exec_run(["homerun", *args])
    assert result.exit_code == 0, result.output.decode()
    return str(result.output.decode())


def _status(http: httpx.Client, job_id: str) -> int:
    return http.get(f"/v1/jobs/{job_id}").status_code


def test_expired_jobs_are_deleted_and_kept_ones_stay(
    stack: Stack, docker_client: docker.DockerClient
) -> None:
    made = _homerun(docker_client, stack, "token", "create", f"e2e-ret-{uuid.uuid4().hex[:6]}")
    fields = dict(line.split(":", 1) for line in made.splitlines() if ":" in line)
    token_id, token = fields["id"].strip(), fields["token"].strip()
    assert "1s" in _homerun(docker_client, stack, "token", "retention", token_id, "1s")
    with httpx.Client(
        base_url=stack.url, headers={"Authorization": f"Bearer {token}"}, timeout=15.0
    ) as http:
        kept = submit(http, {**JOB, "name": "kept", "keep": True})
        later = submit(http, {**JOB, "name": "kept-later"})
        patched = http.patch(f"/v1/jobs/{later['id']}", json={"keep": True})
        assert patched.status_code == 200 and patched.json()["keep"] is True, patched.text
        for job in (kept, later):
            assert wait_job(http, job["id"])["status"] == "succeeded"

        # Submitted after both ended: once it is gone, the purger has passed over both
        # of them past their period too.
        expiring = submit(http, {**JOB, "name": "expiring"})
        wait_for(
            lambda: _status(http, expiring["id"]) == 404,
            60,
            0.5,
            f"job {expiring['id']} to be deleted by retention",
        )
        for job in (kept, later):
            view: dict[str, Any] = http.get(f"/v1/jobs/{job['id']}").raise_for_status().json()
            assert view["keep"] is True and view["status"] == "succeeded", view
        listed = http.get("/v1/jobs").raise_for_status().json()["jobs"]
        assert sorted(j["name"] for j in listed) == ["kept", "kept-later"]
