"""Two runner services on the Swarm: the default ``runner`` and the group ``runner-big``
(labels [bigdisk], from the session's compose arguments). Tasks that run on bigdisk run
only on runner-big (the runner id of every attempt); the size a task asks for is its
container's in ``docker inspect``; a runs_on no group has is refused, listing the groups."""

from __future__ import annotations

from typing import Any

import docker

from tests.conftest import wait_for
from tests.e2e.conftest import Stack, running_containers, submit, wait_job

LABEL_TASK = "homerun.task"  # runners/containers.py


def _hostnames(client: docker.DockerClient, service: str) -> set[str]:
    # A runner's id is its hostname (HOMERUN_RUNNER_ID's default): the container's.
    return {
        client.api.inspect_container(cid)["Config"]["Hostname"]
        for cid in running_containers(client, service)
    }


def _shell(name: str, script: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "shell", "payload": {"script": script}, **extra}


def test_tasks_run_only_on_their_group_with_the_size_they_asked(
    stack: Stack, docker_client: docker.DockerClient
) -> None:
    big = _hostnames(docker_client, stack.service("runner-big"))
    plain = _hostnames(docker_client, stack.service("runner"))
    assert big and plain and not big & plain
    job = {
        "tasks": [
            *(_shell(f"big-{i}", "echo big", runs_on=["bigdisk"]) for i in range(3)),
            _shell(
                "sized",
                "sleep 8",
                runs_on=["bigdisk"],
                resources={"cpus": 0.5, "memory_mb": 200},
            ),
            *(_shell(f"any-{i}", "echo any") for i in range(3)),
        ]
    }
    with stack.http() as http:
        refused = http.post("/v1/jobs", json={"tasks": [_shell("g", "true", runs_on=["gpu"])]})
        assert refused.status_code == 422, refused.text
        assert "(groups: runner []; big [bigdisk];" in refused.json()["error"]["message"]

        created = submit(http, job)
        ids = {t["name"]: t["id"] for t in created["tasks"]}

        def sized_container() -> dict[str, Any] | None:
            found = docker_client.containers.list(filters={"label": f"{LABEL_TASK}={ids['sized']}"})
            return dict(found[0].attrs["HostConfig"]) if found else None

        host = wait_for(sized_container, timeout=120, interval=0.2, message="the sized task")
        assert host["NanoCpus"] == 500_000_000
        assert host["Memory"] == 200 * 1024 * 1024

        done = wait_job(http, created["id"])
        assert done["status"] == "succeeded", done
        for name, task_id in ids.items():
            detail = http.get(f"/v1/jobs/{created['id']}/tasks/{task_id}").json()
            runners = {a["runner_id"] for a in detail["attempts"]}
            assert runners, name
            if name.startswith(("big-", "sized")):
                assert runners <= big, (name, runners)
            else:
                assert runners <= big | plain, (name, runners)
