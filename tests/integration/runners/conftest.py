"""Runner fixtures: a fresh database, private Redis, a private instance label on the engine.

Runners run in-process (``Runner(...).run()`` as a task) when the test needs no killing,
and as ``homerun runner`` subprocesses (``tests.harness.services``) when it SIGKILLs or
SIGSTOPs them.
Every container a test's runners make carries the test's own ``homerun.instance`` label;
whatever is left is removed afterwards, and tests that care assert there is nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import docker
import pytest
import redis.asyncio as aioredis
from databases import Database

from core import queue
from core import transitions as tr
from core.settings import Settings
from core.tokens import create_token
from guard.policy import Profile
from guard.proxy import Guard
from plugins.hookspecs import hookimpl
from plugins.manager import make_plugin_manager
from plugins.tasktypes import ContainerSpec, PayloadError, TaskContext, TaskType
from runners.containers import LABEL_INSTANCE, Engine
from runners.worker import Runner
from tests.harness.services import ServiceProcess, Services

T = TypeVar("T")

SHELL_IMAGE = "homerun/task-shell:0.1.0"


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture
def instance(docker_client: docker.DockerClient) -> Iterator[str]:
    name = f"test-runner-{uuid.uuid4().hex[:10]}"
    yield name
    for container in containers_of(docker_client, name):
        container.remove(force=True)


def containers_of(client: docker.DockerClient, instance: str) -> list[Any]:
    return list(client.containers.list(all=True, filters={"label": f"{LABEL_INSTANCE}={instance}"}))


def small_settings(instance: str, work_dir: Path, **overrides: Any) -> Settings:
    """What ``small_engine`` is made from."""
    settings = Settings(
        runner_concurrency=2,
        work_dir=str(work_dir),
        instance=instance,
        output_limit_bytes=1000,
        output_file_limit_bytes=100,
        log_lines_per_second=1000,
        image_pull_timeout_seconds=30.0,
    )
    return replace(settings, **overrides)


def small_engine(instance: str, work_dir: Path, **overrides: Any) -> Engine:
    """An Engine on the local Docker engine with small output bounds, for tests that drive
    it directly; ``overrides`` replace any of the settings it is made from."""
    return Engine.from_settings(small_settings(instance, work_dir, **overrides))


@contextlib.asynccontextmanager
async def guarded(settings: Settings) -> AsyncIterator[Guarded]:
    """A Docker API guard (guard/) for runners with ``settings``, served on this loop from a
    socket of its own: the runner's own access, as the stack gives it."""
    socket_dir = Path(tempfile.mkdtemp(prefix="homerun-guard-"))  # short: a socket path
    guard = Guard(Profile.from_settings(settings), settings.guard_upstream)
    await guard.serve(str(socket_dir / "docker.sock"))
    try:
        yield Guarded(guard, f"unix://{socket_dir / 'docker.sock'}")
    finally:
        await guard.close()
        shutil.rmtree(socket_dir, ignore_errors=True)


@dataclass(frozen=True)
class Guarded:
    guard: Guard
    url: str  # the runner's docker_url


@pytest.fixture
def settings(settings: Settings, instance: str, tmp_path: Path) -> Settings:
    # Short leases and periods so that crash recovery takes seconds, not minutes.
    return replace(
        settings,
        runner_id=f"{instance}-inproc",
        runner_concurrency=2,
        lease_seconds=2.0,
        heartbeat_seconds=0.5,
        reconcile_seconds=0.5,
        retry_base_seconds=0.05,
        retry_max_seconds=0.2,
        shutdown_grace_seconds=5.0,
        default_timeout_seconds=60,
        output_limit_bytes=4096,
        instance=instance,
        work_dir=str(tmp_path / "work"),
    )


@pytest.fixture
async def qredis(queue_redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(queue_redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def token_id(db: Database) -> str:
    token_id, _ = await create_token(db, "test")
    return token_id


@dataclass
class Jobs:
    """Submits jobs the way the API does: commit in Postgres, then enqueue."""

    db: Database
    redis: aioredis.Redis
    token_id: str

    async def submit(self, *tasks: tr.NewTask, enqueue: bool = True) -> tr.Created:
        created = await tr.create_job(self.db, tr.NewJob(list(tasks)), token_id=self.token_id)
        if enqueue:
            await queue.enqueue(self.redis, created.ready)
        return created

    async def cancel(self, job_id: str) -> tr.Aftermath:
        after = await tr.cancel_job(self.db, job_id)
        for task_id, attempt in after.cancel_running:
            await queue.signal_cancel(self.redis, task_id, attempt)
        return after

    async def job_status(self, job_id: str) -> str:
        return str(await self.db.fetch_val("SELECT status FROM jobs WHERE id = :j", {"j": job_id}))

    async def tasks(self, job_id: str) -> dict[str, dict[str, Any]]:
        rows = await self.db.fetch_all(
            "SELECT * FROM tasks WHERE job_id = :j ORDER BY name", {"j": job_id}
        )
        return {r["name"]: dict(r._mapping) for r in rows}

    async def attempts(self, task_id: str) -> list[dict[str, Any]]:
        rows = await self.db.fetch_all(
            "SELECT * FROM attempts WHERE task_id = :t ORDER BY number", {"t": task_id}
        )
        return [dict(r._mapping) for r in rows]

    async def results(self, task_id: str) -> list[dict[str, Any]]:
        rows = await self.db.fetch_all(
            "SELECT * FROM results WHERE task_id = :t ORDER BY attempt", {"t": task_id}
        )
        return [dict(r._mapping) for r in rows]

    async def finished(self, job_id: str) -> bool:
        return await self.job_status(job_id) in {"succeeded", "failed", "cancelled"}


@pytest.fixture
def jobs(db: Database, qredis: aioredis.Redis, token_id: str) -> Jobs:
    return Jobs(db, qredis, token_id)


def shell(name: str, script: str, **kwargs: Any) -> tr.NewTask:
    return tr.NewTask(name, "shell", {"script": script}, **kwargs)


class ThrowawayTypes:
    """Task types that only these tests need: a missing image, a payload always refused."""

    @hookimpl
    def register_task_types(self, register: Callable[[TaskType], None]) -> None:
        def missing_image(payload: Mapping[str, Any], ctx: TaskContext) -> ContainerSpec:
            return ContainerSpec(image="homerun/test-no-such-image:0", argv=["true"])

        def refuse(payload: Mapping[str, Any], ctx: TaskContext) -> ContainerSpec:
            raise PayloadError("this payload is never good enough", ("x",))

        register(TaskType("test-missing-image", "no such image", {"type": "object"}, missing_image))
        register(TaskType("test-refuse", "refuses every payload", {"type": "object"}, refuse))


@pytest.fixture
def pm() -> Iterator[Any]:
    extra = ThrowawayTypes()
    manager = make_plugin_manager(extra_plugins=[extra], load_entry_points=False)
    yield manager
    manager.unregister(extra)


class InProcess:
    """A runner as a task of the test's event loop."""

    def __init__(self, settings: Settings, pm: Any) -> None:
        self.runner = Runner(settings, pm)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> Runner:
        self.task = asyncio.ensure_future(self.runner.run())
        return self.runner

    async def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.runner.stop()
            await asyncio.wait_for(self.task, 60)
        if self.task is not None and self.task.done():
            self.task.result()


@pytest.fixture
async def start_runner(settings: Settings, pm: Any) -> AsyncIterator[Callable[..., Runner]]:
    started: list[InProcess] = []

    def start(**overrides: Any) -> Runner:
        proc = InProcess(replace(settings, **overrides), pm)
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        await proc.stop()


# --- runner subprocesses ---------------------------------------------------------------


@pytest.fixture
def spawn_runner(settings: Settings, services: Services) -> Callable[..., ServiceProcess]:
    """Starts ``homerun runner`` with these settings, ``runner_id`` and ``overrides``."""

    def spawn(runner_id: str, **overrides: Any) -> ServiceProcess:
        runner = replace(settings, runner_id=runner_id, **overrides)
        return services.runner(runner, name=runner_id)

    return spawn


def running_containers(client: docker.DockerClient, instance: str) -> Sequence[Any]:
    return [c for c in containers_of(client, instance) if c.status == "running"]
