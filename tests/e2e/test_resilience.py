"""The deployed stack under disruption: a killed task container, a missing replica, a
rolling update of the API while clients keep calling it."""

from __future__ import annotations

import subprocess
import threading
import time

import docker
import httpx

from tests.conftest import wait_for
from tests.e2e.conftest import Stack, healthy, running_containers, submit, wait_job

TASK_LABEL = "homerun.task"  # runners/containers.py LABEL_TASK


def test_task_container_killed_mid_job_and_job_still_succeeds(
    stack: Stack, docker_client: docker.DockerClient
) -> None:
    job_spec = {
        "name": "e2e-kill",
        "tasks": [
            {
                "name": "slow",
                "type": "shell",
                "payload": {"script": "echo starting; sleep 5; echo finished"},
                "max_attempts": 3,
            }
        ],
    }
    with stack.http() as http:
        job = submit(http, job_spec)
        task_id = job["tasks"][0]["id"]

        def task_container() -> docker.models.containers.Container | None:
            found = docker_client.containers.list(filters={"label": f"{TASK_LABEL}={task_id}"})
            return found[0] if found else None

        victim = wait_for(task_container, timeout=120, interval=0.2, message="task container")
        victim.kill()

        final = wait_job(http, job["id"])
        assert final["status"] == "succeeded", final
        detail = http.get(f"/v1/jobs/{job['id']}/tasks/{task_id}").raise_for_status().json()
        attempts = detail["attempts"]
        assert len(attempts) >= 2, attempts
        assert attempts[0]["status"] != "succeeded", attempts[0]
        assert attempts[0]["container_id"] and victim.id.startswith(
            attempts[0]["container_id"][:12]
        )
        assert attempts[-1]["status"] == "succeeded"
        assert "finished" in detail["result"]["stdout"]


def _replica_state(http: httpx.Client) -> dict[str, object]:
    return dict(http.get("/readyz").raise_for_status().json()["replica"])


def _scale(client: docker.DockerClient, service: str, replicas: int) -> None:
    # A fresh object each time: an update carries the service's version, and a stale one is
    # refused ("update out of sequence").
    client.services.get(service).scale(replicas)


def test_reads_keep_working_with_the_replica_scaled_to_zero(
    stack: Stack, docker_client: docker.DockerClient
) -> None:
    replica = stack.service("postgres-replica")
    shell_true = {"tasks": [{"type": "shell", "payload": {"script": "true"}}]}
    failures: list[tuple[str, int, str]] = []

    def read(http: httpx.Client, path: str) -> None:
        resp = http.get(path)
        if resp.status_code != 200:
            failures.append((path, resp.status_code, resp.text[:200]))

    with stack.http() as http:
        job = submit(http, {"name": "e2e-before", **shell_true})
        try:
            _scale(docker_client, replica, 0)
            wait_for(
                lambda: not running_containers(docker_client, replica),
                timeout=90,
                interval=0.5,
                message="replica scaled to 0",
            )

            # Plain reads (no recent write pins this token to the primary) go to the replica,
            # fail there, and are retried on the primary: every one answers, and the API
            # reports the replica down.
            def reads_then_replica_down() -> bool:
                read(http, f"/v1/jobs/{job['id']}")
                read(http, "/v1/jobs?limit=5")
                state = _replica_state(http)
                return state["up"] is False and int(str(state["fallbacks"])) > 0

            wait_for(
                reads_then_replica_down,
                timeout=60,
                interval=0.2,
                message="readyz to report the replica down, with fallbacks",
            )
            for _ in range(20):
                read(http, f"/v1/jobs/{job['id']}")
                read(http, "/v1/jobs?limit=5")
            # A job written now is readable at once (read-your-writes, no replica).
            for _ in range(3):
                new = submit(http, shell_true)
                read(http, f"/v1/jobs/{new['id']}")
            assert failures == []
        finally:
            _scale(docker_client, replica, 1)
        wait_for(
            lambda: healthy(docker_client, replica, 1),
            timeout=240,
            interval=1,
            message="replica back and healthy",
        )

        def reads_then_replica_up() -> bool:
            read(http, f"/v1/jobs/{job['id']}")
            return _replica_state(http)["up"] is True

        wait_for(
            reads_then_replica_up,
            timeout=90,
            interval=0.5,
            message="readyz to report the replica up again",
        )
        assert failures == []


def test_rolling_update_of_the_api_fails_no_request(
    stack: Stack, docker_client: docker.DockerClient
) -> None:
    service = stack.service("api")
    old = running_containers(docker_client, service)
    assert len(old) == 2
    results: list[tuple[str, int | str]] = []
    stop = threading.Event()

    def client_loop() -> None:
        with stack.http(timeout=10.0) as http:
            job = submit(http, {"tasks": [{"type": "shell", "payload": {"script": "true"}}]})
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    if i % 5 == 0:
                        resp = http.post(
                            "/v1/jobs",
                            json={"tasks": [{"type": "shell", "payload": {"script": "true"}}]},
                        )
                    else:
                        resp = http.get(f"/v1/jobs/{job['id']}")
                    results.append((resp.request.method, resp.status_code))
                except httpx.HTTPError as exc:
                    results.append(("error", repr(exc)))
                time.sleep(0.05)  # pacing of the client loop, not a wait for a condition

    worker = threading.Thread(target=client_loop, daemon=True)
    worker.start()
    try:
        wait_for(lambda: len(results) >= 10, timeout=30, message="client loop running")
        update = subprocess.run(
            ["docker", "service", "update", "--force", "--detach=false", "--quiet", service],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert update.returncode == 0, update.stderr

        # The CLI returns once the tasks converged; the update ends after its monitor window,
        # and a task failing within it would roll the service back.
        def update_state() -> str | None:
            svc = docker_client.services.get(service)
            state = svc.attrs.get("UpdateStatus", {}).get("State")
            return state if state not in ("updating", None) else None

        state = wait_for(update_state, timeout=120, interval=1, message="update to end")
        assert state == "completed", _why_not_completed(docker_client, service)
    finally:
        stop.set()
        worker.join(30)

    new = running_containers(docker_client, service)
    assert len(new) == 2 and not (new & old), (old, new)
    failed = [r for r in results if r[1] not in (200, 201)]
    assert len(results) > 50, len(results)
    assert failed == [], failed[:20]


def _why_not_completed(client: docker.DockerClient, service: str) -> dict[str, object]:
    """What Swarm says about an update that did not complete: its message, and every task
    that did not run to the end with why."""
    svc = client.services.get(service)
    return {
        "update": svc.attrs.get("UpdateStatus", {}),
        "tasks": [
            (t["Slot"], t["Status"]["State"], t["Status"].get("Err"), t["Status"]["Message"])
            for t in svc.tasks()
            if t["Status"]["State"] not in ("running", "shutdown") or t["Status"].get("Err")
        ],
    }
