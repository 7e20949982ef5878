"""A real homerun for the plugin suites: ``homerun api`` and ``homerun runner`` processes.

One stack per test module (starting one costs a few seconds), on a database and two
redis-servers of its own, so a hostile task can only ever hurt this suite's stack. Tasks go
in over HTTP and results come back over HTTP, exactly as a client sees them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.conftest import wait_for
from tests.harness.services import Services
from tests.harness.stack import Stack, instance_containers, private_stack

TERMINAL = {"succeeded", "failed", "cancelled"}


@contextmanager
def plugin_stack(services: Services, **overrides: Any) -> Iterator[Stack]:
    """The plugin suites' stack: api and runner, quick retries, small disk limit."""
    settings: dict[str, Any] = {
        "shutdown_grace_seconds": 5.0,
        "retry_base_seconds": 0.1,
        "retry_max_seconds": 0.5,
        # Small enough that a disk hog shows against it in seconds (test_hostile.py).
        "task_disk_bytes_per_second": 8 * 1024 * 1024,
        **overrides,
    }
    with private_stack(
        "test-plugins",
        commands=("api", "runner"),
        services=services,
        # A task container runs the shell task's image; the container type may use it too.
        allowed_images=("homerun/task-shell:*",),
        **settings,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def stack(module_services: Services) -> Iterator[Stack]:
    with plugin_stack(module_services) as running:
        yield running


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stack.url, headers={"Authorization": f"Bearer {stack.token}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture
def runner_survives(stack: Stack) -> Iterator[None]:
    """After the test: the runner process is alive and no task container is left.

    Modules that run tasks use it for every test: ``pytest.mark.usefixtures(...)``.
    """
    yield
    stack.processes["runner"].check()
    wait_for(
        lambda: not instance_containers(stack.instance),
        timeout=15,
        message="task containers removed",
    )


def submit(api: httpx.Client, *tasks: Mapping[str, Any]) -> str:
    response = api.post("/v1/jobs", json={"tasks": list(tasks)})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def wait_job(api: httpx.Client, job_id: str, timeout: float = 60) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = api.get(f"/v1/jobs/{job_id}").json()
        return job if job["status"] in TERMINAL else None

    result: dict[str, Any] = wait_for(finished, timeout=timeout, interval=0.1, message=job_id)
    return result


def task_detail(api: httpx.Client, job_id: str, name: str) -> dict[str, Any]:
    """The task with its attempts (and each attempt's result), found by name."""
    job = api.get(f"/v1/jobs/{job_id}").json()
    task_id = next(t["id"] for t in job["tasks"] if t["name"] == name)
    detail: dict[str, Any] = api.get(f"/v1/jobs/{job_id}/tasks/{task_id}").json()
    return detail


def run_task(
    api: httpx.Client, task: Mapping[str, Any], timeout: float = 60
) -> tuple[dict[str, Any], float]:
    """Submit a one-task job, wait for it to end; (task detail, seconds it took)."""
    started = time.monotonic()
    job_id = submit(api, {"name": "t", "max_attempts": 1, **task})
    wait_job(api, job_id, timeout)
    return task_detail(api, job_id, "t"), time.monotonic() - started
