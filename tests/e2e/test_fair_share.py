"""Fair share on the deployed stack as it comes (issue 12, item 7): one token's long tasks
never hold every runner slot, so another token's task runs while they do.

The session stack has four slots (runner 1 x 2, runner-big 1 x 2) and sets no cap of its
own: the stack's default caps each token at one less (StackConfig.running_cap). Before,
the default was no cap, and a token that submitted first held all four until its tasks
ended.
"""

from __future__ import annotations

import time
import uuid

import docker
import httpx

from tests.conftest import wait_for
from tests.e2e.conftest import Stack, running_containers, submit, wait_job

SLOTS = 4
HOG = {
    "name": "hog",
    "tasks": [
        {"name": f"long-{i}", "type": "shell", "payload": {"script": "sleep 300"}}
        for i in range(SLOTS + 2)
    ],
}


def _running(http: httpx.Client, job_id: str) -> int:
    job = http.get(f"/v1/jobs/{job_id}").raise_for_status().json()
    return sum(1 for t in job["tasks"] if t["status"] == "running")


def _new_token(client: docker.DockerClient, stack: Stack) -> str:
    (api, *_) = running_containers(client, stack.service("api"))
    made = client.containers.get(api).exec_run(
        ["homerun", "token", "create", f"e2e-fair-{uuid.uuid4().hex[:6]}"], demux=True
    )
    assert made.exit_code == 0, made.output
    stdout = (made.output[0] or b"").decode()
    fields = dict(line.split(":", 1) for line in stdout.splitlines() if ":" in line)
    return fields["token"].strip()


def test_one_tokens_long_tasks_leave_a_slot_for_another_token(
    stack: Stack, docker_client: docker.DockerClient
) -> None:
    other = _new_token(docker_client, stack)
    with (
        stack.http(timeout=15.0) as hog_http,
        httpx.Client(
            base_url=stack.url, headers={"Authorization": f"Bearer {other}"}, timeout=15.0
        ) as other_http,
    ):
        hog = submit(hog_http, HOG)
        try:
            # The hog fills what its cap allows, and not one slot more.
            wait_for(
                lambda: _running(hog_http, hog["id"]) == SLOTS - 1,
                timeout=120,
                interval=0.5,
                message="the hog's tasks to take their capped share",
            )
            quick = submit(
                other_http,
                {"tasks": [{"name": "quick", "type": "shell", "payload": {"script": "echo hi"}}]},
            )
            started = time.monotonic()
            done = wait_job(other_http, quick["id"], timeout=120)
            waited = time.monotonic() - started
            assert done["status"] == "succeeded", done
            # It ran beside the hog's tasks, not after them (they sleep 300 s).
            assert waited < 120
            assert _running(hog_http, hog["id"]) == SLOTS - 1
        finally:
            hog_http.post(f"/v1/jobs/{hog['id']}/cancel")
        assert wait_job(hog_http, hog["id"], timeout=120)["status"] == "cancelled"
