"""A whole private homerun: API, runner and notifier processes on stores of their own.

What the plugin suites and ``make bench`` run jobs against, over HTTP exactly as a client
does. On exit the processes get their graceful shutdown and every task container labelled
with the stack's instance is removed, so even a crashed runner leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx

from core.settings import Settings
from runners.containers import LABEL_INSTANCE
from tests.harness.services import Command, ServiceProcess, Services
from tests.harness.stores import private_database, redis_server
from tests.harness.waiting import free_port, wait_for


@dataclass(frozen=True)
class Stack:
    url: str  # the API's base URL
    token: str  # a bearer token for it
    settings: Settings  # what every process of the stack was started with
    services: Services

    @property
    def processes(self) -> Mapping[str, ServiceProcess]:
        return {p.name: p for p in self.services}

    @property
    def instance(self) -> str:
        """The label value on every task container this stack's runner makes."""
        return self.settings.instance


def instance_containers(instance: str) -> list[str]:
    """Ids of the task containers of one homerun instance (its runners label every one)."""
    client = docker.APIClient()
    try:
        found = client.containers(all=True, filters={"label": f"{LABEL_INSTANCE}={instance}"})
        return [str(c["Id"]) for c in found]
    finally:
        client.close()


def remove_containers(instance: str) -> None:
    """Remove whatever a runner of this instance left on the engine (there should be nothing)."""
    client = docker.APIClient()
    try:
        for container_id in instance_containers(instance):
            with contextlib.suppress(docker.errors.NotFound):
                client.remove_container(container_id, force=True, v=True)
    finally:
        client.close()


async def _prepare(database_url: str) -> str:
    """Migrate the database and make a token; its plaintext."""
    from databases import Database

    from core.migrate import migrate
    from core.tokens import create_token

    await migrate(database_url)
    db = Database(database_url)
    await db.connect()
    try:
        _, token = await create_token(db, "stack")
    finally:
        await db.disconnect()
    return token


async def _new_token(database_url: str, name: str) -> tuple[str, str]:
    from databases import Database

    from core.tokens import create_token

    db = Database(database_url)
    await db.connect()
    try:
        return await create_token(db, name)
    finally:
        await db.disconnect()


def new_token(database_url: str, name: str) -> tuple[str, str]:
    """Another token on a running stack's database: ``(token_id, plaintext)``."""
    return asyncio.run(_new_token(database_url, name))


@contextmanager
def homerun_stack(
    settings: Settings,
    services: Services,
    commands: Sequence[Command] = ("api", "runner", "notifier"),
) -> Iterator[Stack]:
    """Migrate the database, make a token, start ``homerun <command>`` for each command.

    ``settings`` must already name the stores, the API's host and port, and an instance.
    """
    token = asyncio.run(_prepare(settings.database_url))
    with ExitStack() as cleanup:
        cleanup.callback(remove_containers, settings.instance)
        cleanup.callback(services.stop_all)
        for command in commands:
            started = services.start(command, settings)
            if command == "guard":
                # The runner asks the engine's version as it starts: the socket comes first.
                def listening(
                    process: ServiceProcess = started, socket: Path = Path(settings.guard_socket)
                ) -> bool:
                    process.check()
                    return socket.exists()

                wait_for(listening, 30, interval=0.05, message="the Docker API guard's socket")
        url = f"http://{settings.host}:{settings.port}"
        headers = {"Authorization": f"Bearer {token}"}

        def api_ready() -> bool:
            for process in services:
                process.check()
            return httpx.get(f"{url}/v1/task-types", headers=headers, timeout=2).status_code == 200

        try:
            wait_for(api_ready, 60, interval=0.05, message="the API to answer")
            yield Stack(url, token, settings, services)
        except BaseException:
            print(services.logs(30), file=sys.stderr)
            raise


@contextmanager
def private_stack(
    label: str,
    *,
    runner_concurrency: int = 4,
    commands: Sequence[Command] = ("api", "runner", "notifier"),
    services: Services | None = None,
    guarded: bool = True,
    **overrides: Any,
) -> Iterator[Stack]:
    """Everything private: a database, two redis-servers, a work directory, the processes.

    ``label`` names them (``homerun-<label>-<id>`` is the runner and the instance label);
    ``overrides`` replace any setting; ``services`` lets a caller (a pytest fixture) hold
    the processes, to show their logs when a test fails. With a runner and ``guarded``, a
    ``homerun guard`` starts first and the runner reaches the engine only through it, as
    in the deployed stack.
    """
    run_id = uuid.uuid4().hex[:10]
    name = f"homerun-{label}-{run_id}"
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        database_url = stack.enter_context(private_database(f"homerun_{label.replace('-', '_')}"))
        queue = stack.enter_context(redis_server(f"{label}-queue"))
        events = stack.enter_context(redis_server(f"{label}-events"))
        settings = Settings(
            database_url=database_url,
            queue_redis_url=queue.url,
            events_redis_url=events.url,
            host="127.0.0.1",
            port=free_port(),
            runner_id=name,
            # Labels this stack's containers: a runner's start-up sweep touches only its own.
            instance=name,
            work_dir=str(workdir / "work"),
            runner_concurrency=runner_concurrency,
            # Measure and test the pipeline, not the per-token rate limit.
            rate_limit_per_second=10_000.0,
            rate_limit_burst=10_000,
        )
        if guarded and "runner" in commands:
            socket = workdir / "guard.sock"
            settings = replace(settings, guard_socket=str(socket), docker_url=f"unix://{socket}")
            commands = ("guard", *commands)
        yield stack.enter_context(
            homerun_stack(replace(settings, **overrides), services or Services(workdir), commands)
        )
