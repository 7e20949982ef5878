"""A three-task pipeline through the deployed stack, followed live over Server-Sent Events."""

from __future__ import annotations

import json

import docker

from stack.topology import DOCKER_SOCKET, GUARD_SOCKET
from tests.e2e.conftest import Stack, follow_sse, running_containers, submit

EXTRACT = "printf '%s' '{\"numbers\": [1, 2, 3]}' > /homerun/output.json\necho extracted"
SQUARE = """
import json
data = json.load(open('/homerun/inputs/extract.json'))
json.dump({'squares': [n * n for n in data['numbers']]}, open('/homerun/output.json', 'w'))
print('squared')
"""
TOTAL = """
import json
data = json.load(open('/homerun/inputs/square.json'))
json.dump({'total': sum(data['squares'])}, open('/homerun/output.json', 'w'))
"""
PIPELINE = {
    "name": "e2e-pipeline",
    "labels": {"suite": "e2e"},
    "tasks": [
        {"name": "extract", "type": "shell", "payload": {"script": EXTRACT}},
        {
            "name": "square",
            "type": "python",
            "payload": {"code": SQUARE},
            "depends_on": ["extract"],
        },
        {"name": "total", "type": "python", "payload": {"code": TOTAL}, "depends_on": ["square"]},
    ],
}


def test_three_task_pipeline_followed_over_sse_to_success(stack: Stack) -> None:
    with stack.http() as http:
        job = submit(http, PIPELINE)
        ids = {t["name"]: t["id"] for t in job["tasks"]}
        assert set(ids) == {"extract", "square", "total"}

        events = follow_sse(http, f"/v1/jobs/{job['id']}/events")

        status = [e.json() for e in events if e.event != "task.log"]
        assert [e["type"] for e in status] == [e.event for e in events if e.event != "task.log"]
        # Every status event once, numbered 1..n in order, and the stream ends on the job's end.
        assert [e["seq"] for e in status] == list(range(1, len(status) + 1)), status
        assert status[-1]["type"] == "job.succeeded", status[-1]
        assert all(e["job_id"] == job["id"] for e in status)
        succeeded = [e["task_id"] for e in status if e["type"] == "task.succeeded"]
        # Dependencies hold: each task finished after the one it reads from.
        assert succeeded == [ids["extract"], ids["square"], ids["total"]], status
        for name in ("square", "total"):
            started = [
                e["seq"]
                for e in status
                if e["task_id"] == ids[name] and e["type"] == "task.running"
            ]
            upstream = "extract" if name == "square" else "square"
            upstream_done = next(
                e["seq"]
                for e in status
                if e["task_id"] == ids[upstream] and e["type"] == "task.succeeded"
            )
            assert started and min(started) > upstream_done, (name, status)

        final = http.get(f"/v1/jobs/{job['id']}").raise_for_status().json()
        assert final["status"] == "succeeded"
        outputs = {t["name"]: t["output"] for t in final["tasks"]}
        # The data really flowed through three containers: 1 + 4 + 9.
        assert outputs == {
            "extract": {"numbers": [1, 2, 3]},
            "square": {"squares": [1, 4, 9]},
            "total": {"total": 14},
        }, json.dumps(outputs)


GUARDED_CREATE = """
import os, docker
client = docker.DockerClient(base_url=os.environ["HOMERUN_DOCKER_URL"])
for kwargs in ({"privileged": True}, {"volumes": {"/": {"bind": "/host"}}}):
    try:
        client.containers.create("homerun/task-shell:0.1.0", ["true"], **kwargs)
        print("created", kwargs)
    except docker.errors.APIError as exc:
        print(exc.status_code, exc.explanation)
print("socket" if os.path.exists("/var/run/docker.sock") else "no socket")
"""


def test_the_runners_hold_no_docker_socket_only_the_guard_does(
    stack: Stack, docker_client: docker.DockerClient
) -> None:
    """The deployed stack as issue 12 asks: the runners reach the engine only through their
    node's docker-guard (tasks still run: the pipeline above), which refuses the rest."""
    for key in ("runner", "runner-big"):
        spec = docker_client.services.get(stack.service(key)).attrs["Spec"]["TaskTemplate"]
        container = spec["ContainerSpec"]
        sources = [m["Source"] for m in container.get("Mounts", [])]
        assert not any("docker" in source and source.endswith(".sock") for source in sources)
        env = dict(item.split("=", 1) for item in container["Env"])
        assert env["HOMERUN_DOCKER_URL"] == f"unix://{GUARD_SOCKET}", key
    guard = docker_client.services.get(stack.service("docker-guard")).attrs["Spec"]
    assert "Global" in guard["Mode"]
    assert [m["Target"] for m in guard["TaskTemplate"]["ContainerSpec"]["Mounts"]].count(
        DOCKER_SOCKET
    ) == 1
    runner = docker_client.containers.get(
        next(iter(running_containers(docker_client, stack.service("runner"))))
    )
    # The runner's own access, as its own user: what a compromised runner or plugin has.
    code, out = runner.exec_run(["/opt/homerun/bin/python", "-c", GUARDED_CREATE], user="10001")
    lines = out.decode().splitlines()
    assert code == 0, lines
    assert lines[0].startswith("403 homerun guard: HostConfig.Privileged"), lines
    assert lines[1].startswith("403 homerun guard:"), lines
    assert lines[2] == "no socket", lines
