"""A task's secrets at the runner: refused off a tmpfs, gone after the run, swept after a
crash, a deleted secret fails its task, a runner without the key hands the task on."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from databases import Database

from core.sealing import Keyring, generate_line
from core.settings import Settings
from core.store import secrets as secret_store
from core.transitions import MAX_INFRASTRUCTURE_RETRIES
from runners import reconciler
from runners.containers import Engine
from runners.secretfiles import attempt_dir
from runners.worker import Runner
from tests.conftest import eventually
from tests.integration.runners.conftest import Jobs, shell

pytestmark = pytest.mark.integration

KEYRING = generate_line("k1")
VALUE = b"runner-side-s3cret"


@pytest.fixture
def tmpfs_dir() -> Iterator[Path]:
    path = Path("/dev/shm") / f"homerun-runner-secrets-{uuid.uuid4().hex[:8]}"
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()]


async def put(db: Database, token_id: str, name: str, value: bytes = VALUE) -> None:
    await secret_store.put(db, token_id, name, Keyring.parse(KEYRING).seal(token_id, name, value))


async def test_the_files_are_there_for_the_run_and_gone_after(
    jobs: Jobs, db: Database, token_id: str, start_runner: Callable[..., Runner], tmpfs_dir: Path
) -> None:
    await put(db, token_id, "api-key")
    created = await jobs.submit(
        shell("a", "cat /run/secrets/api-key; echo; ls /run/secrets", secrets=("api-key",))
    )
    start_runner(secrets_keyring=KEYRING, secrets_dir=str(tmpfs_dir))
    await eventually(lambda: jobs.finished(created.job_id), 60, "the job to finish")
    tasks = await jobs.tasks(created.job_id)
    [result] = await jobs.results(str(tasks["a"]["id"]))
    assert result["stdout"].splitlines() == ["[redacted:api-key]", "api-key"]
    assert files_under(tmpfs_dir) == []


async def test_a_secrets_dir_on_disk_is_refused_and_nothing_runs(
    jobs: Jobs, db: Database, token_id: str, start_runner: Callable[..., Runner], tmp_path: Path
) -> None:
    await put(db, token_id, "api-key")
    created = await jobs.submit(
        shell("a", "cat /run/secrets/api-key", secrets=("api-key",), max_attempts=1)
    )
    on_disk = tmp_path / "secrets"
    start_runner(secrets_keyring=KEYRING, secrets_dir=str(on_disk))
    await eventually(lambda: jobs.finished(created.job_id), 120, "the job to finish")
    tasks = await jobs.tasks(created.job_id)
    attempts = await jobs.attempts(str(tasks["a"]["id"]))
    # The platform's fault (another runner may have its tmpfs): retried to the bound.
    assert len(attempts) == MAX_INFRASTRUCTURE_RETRIES + 1
    assert {a["failure_kind"] for a in attempts} == {"infrastructure"}
    assert "is not a tmpfs" in attempts[0]["error"]
    assert files_under(on_disk) == []


async def test_a_secret_deleted_after_submission_fails_its_task(
    jobs: Jobs, db: Database, token_id: str, start_runner: Callable[..., Runner], tmpfs_dir: Path
) -> None:
    await put(db, token_id, "short-lived")
    created = await jobs.submit(shell("a", "true", secrets=("short-lived",), max_attempts=1))
    assert await secret_store.delete(db, token_id, "short-lived")
    start_runner(secrets_keyring=KEYRING, secrets_dir=str(tmpfs_dir))
    await eventually(lambda: jobs.finished(created.job_id), 60, "the job to finish")
    tasks = await jobs.tasks(created.job_id)
    [attempt] = await jobs.attempts(str(tasks["a"]["id"]))
    assert attempt["failure_kind"] == "task"
    assert "secret 'short-lived' no longer exists" in attempt["error"]


async def test_a_runner_without_the_key_hands_the_task_on(
    jobs: Jobs, db: Database, token_id: str, start_runner: Callable[..., Runner], tmpfs_dir: Path
) -> None:
    # Sealed under k2, a key this runner's keyring (k1 only) does not hold: mid-rotation.
    rotated = Keyring.parse(KEYRING + "\n" + generate_line("k2"))
    await secret_store.put(db, token_id, "new", rotated.seal(token_id, "new", VALUE))
    created = await jobs.submit(shell("a", "true", secrets=("new",), max_attempts=1))
    start_runner(secrets_keyring=KEYRING, secrets_dir=str(tmpfs_dir))
    await eventually(lambda: jobs.finished(created.job_id), 60, "the job to finish")
    tasks = await jobs.tasks(created.job_id)
    attempts = await jobs.attempts(str(tasks["a"]["id"]))
    assert {a["failure_kind"] for a in attempts} == {"infrastructure"}
    assert "sealed under key 'k2'" in attempts[0]["error"]


async def test_a_crashed_runners_secret_files_are_swept(
    db: Database, instance: str, tmpfs_dir: Path, tmp_path: Path
) -> None:
    leftover = attempt_dir(str(tmpfs_dir), instance, str(uuid.uuid4()), 1)
    leftover.mkdir(parents=True)
    (leftover / "api-key").write_bytes(VALUE)
    engine = Engine.from_settings(
        Settings(instance=instance, work_dir=str(tmp_path / "work"), secrets_dir=str(tmpfs_dir))
    )
    try:
        await reconciler.sweep(
            db,
            engine,
            runner_id="gone",
            work_dir=str(tmp_path / "work"),
            instance=instance,
            startup=True,
            secrets_dir=str(tmpfs_dir),
        )
    finally:
        engine.close()
    assert not leftover.exists()
