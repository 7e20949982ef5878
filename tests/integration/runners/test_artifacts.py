"""Artifacts through the real runner and Docker: collected, refused, bounded, handed on.

Each test runs shell tasks in real containers: what a task leaves under
/homerun/artifacts is stored in Postgres (``core/store/artifacts.py``), a downstream task
reads it under /homerun/inputs/<task>/, and the attacks the issue names (a symlink to
/etc/passwd, a hard link out of the tree, a FIFO, 100,000 tiny files, too many bytes) are
refused or fail the task as ``artifacts`` without hurting the runner.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from databases import Database

from core.store import artifacts as artifact_store
from runners.worker import Runner
from tests.conftest import eventually
from tests.harness.services import ServiceProcess
from tests.integration.runners.conftest import Jobs, shell

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


async def stored(db: Database, task_id: str) -> dict[str, artifact_store.Stored]:
    rows = await db.fetch_all(
        "SELECT a.*, a.refused FROM artifacts a WHERE a.task_id = :t ORDER BY path", {"t": task_id}
    )
    return {
        r["path"]: artifact_store.Stored(
            id=str(r["id"]),
            task_id=str(r["task_id"]),
            path=r["path"],
            size=int(r["size"]),
            sha256=r["sha256"],
            content_type=r["content_type"],
            chunk_bytes=int(r["chunk_bytes"]),
            refused=r["refused"],
            created_at=r["created_at"],
        )
        for r in rows
    }


async def read_back(db: Database, artifact: artifact_store.Stored) -> bytes:
    parts = [
        data
        async for data in artifact_store.chunks(
            lambda q, v: db.fetch_all(q, dict(v)), artifact, 0, artifact.size - 1
        )
    ]
    return b"".join(parts)


async def test_a_file_passes_from_one_container_to_the_next(
    jobs: Jobs, db: Database, start_runner: Callable[..., Runner]
) -> None:
    created = await jobs.submit(
        shell(
            "a",
            "mkdir -p /homerun/artifacts/out && head -c 52428800 /dev/urandom"
            " > /homerun/artifacts/out/data.bin && echo report > /homerun/artifacts/r.txt"
            " && sha256sum /homerun/artifacts/out/data.bin",
        ),
        shell(
            "b",
            "sha256sum /homerun/inputs/a/out/data.bin; cat /homerun/inputs/a/r.txt;"
            " touch /homerun/inputs/a/new 2>/dev/null && echo writable || echo read-only",
            depends_on=["a"],
        ),
    )
    start_runner()
    await eventually(lambda: jobs.finished(created.job_id), 120, "the pipeline to finish")
    assert await jobs.job_status(created.job_id) == "succeeded"
    tasks = await jobs.tasks(created.job_id)
    [a_result] = await jobs.results(str(tasks["a"]["id"]))
    [b_result] = await jobs.results(str(tasks["b"]["id"]))
    written = a_result["stdout"].split()[0]
    files = await stored(db, str(tasks["a"]["id"]))
    assert set(files) == {"out/data.bin", "r.txt"}
    data = files["out/data.bin"]
    assert (data.size, data.sha256, data.refused) == (50 * MIB, written, None)
    assert hashlib.sha256(await read_back(db, data)).hexdigest() == written
    assert files["r.txt"].content_type == "text/plain"
    lines = b_result["stdout"].splitlines()
    assert lines[0].split()[0] == written
    assert lines[1:] == ["report", "read-only"]
    # The downstream task left nothing, so it holds nothing.
    assert await stored(db, str(tasks["b"]["id"])) == {}


async def test_a_symlink_a_hard_link_out_and_a_fifo_are_refused_never_read(
    jobs: Jobs, db: Database, start_runner: Callable[..., Runner]
) -> None:
    script = (
        "cd /homerun/artifacts && ln -s /etc/passwd passwd && ln -s / root"
        " && mkfifo pipe && echo kept > kept.txt"
        # A hard link out of the tree: the kernel refuses it across the bind mount (EXDEV);
        # the collector's own check is the second wall (tests/unit/runners/test_artifacts.py).
        " && (ln /etc/passwd hard 2>&1 || true) && (ln /tmp/x hard2 2>&1; touch /tmp/x;"
        " ln /tmp/x hard2 2>&1 || true)"
    )
    created = await jobs.submit(shell("a", script))
    start_runner()
    await eventually(lambda: jobs.finished(created.job_id), 60, "the job to finish")
    assert await jobs.job_status(created.job_id) == "succeeded"
    tasks = await jobs.tasks(created.job_id)
    [result] = await jobs.results(str(tasks["a"]["id"]))
    assert "Invalid cross-device link" in result["stdout"]
    files = await stored(db, str(tasks["a"]["id"]))
    assert {p: f.refused for p, f in files.items()} == {
        "kept.txt": None,
        "passwd": "a symlink (never followed)",
        "pipe": "a FIFO",
        "root": "a symlink (never followed)",
    }
    assert await read_back(db, files["kept.txt"]) == b"kept\n"
    assert (
        await db.fetch_val(
            "SELECT count(*) FROM artifact_chunks k JOIN artifacts a ON a.id = k.artifact_id"
            " WHERE a.task_id = :t AND a.refused IS NOT NULL",
            {"t": str(tasks["a"]["id"])},
        )
        == 0
    )


async def test_too_many_bytes_fail_the_task_as_artifacts_without_a_retry(
    jobs: Jobs, db: Database, start_runner: Callable[..., Runner]
) -> None:
    created = await jobs.submit(
        shell("a", "head -c 3000 /dev/zero > /homerun/artifacts/a; echo done", max_attempts=3)
    )
    start_runner(artifacts_max_bytes=2000)
    await eventually(lambda: jobs.finished(created.job_id), 60, "the job to finish")
    tasks = await jobs.tasks(created.job_id)
    [attempt] = await jobs.attempts(str(tasks["a"]["id"]))
    assert attempt["failure_kind"] == "artifacts"
    assert "more than 2000 bytes" in attempt["error"]
    assert await stored(db, str(tasks["a"]["id"])) == {}


def peak_rss_kib(runner: ServiceProcess) -> tuple[int, int]:
    """(VmRSS, VmHWM) of the runner process, in KiB."""
    fields = {}
    for line in Path(f"/proc/{runner.proc.pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


async def test_a_hundred_thousand_tiny_files_stop_at_the_limit_with_the_runner_flat(
    jobs: Jobs, db: Database, spawn_runner: Callable[..., ServiceProcess]
) -> None:
    runner = spawn_runner("flood-runner", artifacts_max_files=1000).wait_ready()
    warm = await jobs.submit(shell("warm", "echo x > /homerun/artifacts/x"))
    await eventually(lambda: jobs.finished(warm.job_id), 60, "the warm-up job")
    before, _ = peak_rss_kib(runner)
    created = await jobs.submit(
        shell(
            "flood",
            "cd /homerun/artifacts && mkdir d && cd d && seq 1 100000 | xargs touch && ls | wc -l",
            max_attempts=3,
            timeout_s=120,
        )
    )
    await eventually(lambda: jobs.finished(created.job_id), 180, "the flood job to finish")
    _, peak = peak_rss_kib(runner)
    tasks = await jobs.tasks(created.job_id)
    [attempt] = await jobs.attempts(str(tasks["flood"]["id"]))
    assert attempt["failure_kind"] == "artifacts"
    assert "more than 1000 entries" in attempt["error"]
    assert await stored(db, str(tasks["flood"]["id"])) == {}
    # Measured here: a few MiB at most over the warm runner; listed whole the walk alone
    # would be ~20 MiB of directory entries and the stored rows far more.
    assert peak - before < 16 * 1024, (before, peak)
    assert runner.alive


async def test_submitted_files_are_read_only_under_homerun_files(
    jobs: Jobs, start_runner: Callable[..., Runner]
) -> None:
    from core import transitions as tr

    data = b"a,b\n1,2\n"
    created = await jobs.submit(
        tr.NewTask(
            "a",
            "shell",
            {
                "script": "cat /homerun/files/data.csv;"
                " echo x >> /homerun/files/data.csv 2>/dev/null && echo writable || echo read-only"
            },
            files={"data.csv": base64.b64encode(data).decode()},
        )
    )
    start_runner()
    await eventually(lambda: jobs.finished(created.job_id), 60, "the job to finish")
    tasks = await jobs.tasks(created.job_id)
    [result] = await jobs.results(str(tasks["a"]["id"]))
    assert result["stdout"] == "a,b\n1,2\nread-only\n"


async def test_a_map_tasks_instances_hand_their_artifacts_downstream_by_index(
    jobs: Jobs, start_runner: Callable[..., Runner]
) -> None:
    from core import transitions as tr

    created = await jobs.submit(
        shell("seed", "echo seed > /homerun/artifacts/seed.txt"),
        tr.NewTask(
            "each",
            "shell",
            {
                "script": "n=$(cut -c1 /homerun/inputs/seed/seed.txt)"
                "$(tr -dc 0-9 < /homerun/inputs/_map.json | cut -c1);"
                " echo $n > /homerun/artifacts/part.txt"
            },
            depends_on=["seed"],
            map=tr.MapSpec(items=[0, 1, 2], max_items=3),
        ),
        shell("join", "cat /homerun/inputs/each/*/part.txt", depends_on=["each"]),
    )
    start_runner()
    await eventually(lambda: jobs.finished(created.job_id), 120, "the map job to finish")
    assert await jobs.job_status(created.job_id) == "succeeded"
    tasks = await jobs.tasks(created.job_id)
    [result] = await jobs.results(str(tasks["join"]["id"]))
    assert result["stdout"].split() == ["s0", "s1", "s2"]
