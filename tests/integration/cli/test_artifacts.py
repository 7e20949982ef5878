"""Artifacts end to end on one machine: API, runner and notifier processes, the CLI as a
user runs it. A 50 MB file round-trips with its sha256 (list, Range, the CLI); another
token sees 404; a re-run from failed hands the taken-over task's artifacts downstream; the
purge removes them with their job."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.store import retention
from tests.integration.cli.support import System, run_cli
from tests.integration.events.harness import make_token

pytestmark = pytest.mark.integration

MIB = 1024 * 1024

PIPELINE: dict[str, Any] = {
    "tasks": [
        {
            "name": "a",
            "type": "shell",
            "payload": {
                "script": "mkdir -p /homerun/artifacts/out"
                " && head -c 52428800 /dev/urandom > /homerun/artifacts/out/data.bin"
                ' && printf %s "$HOMERUN_JOB_ID" > /homerun/artifacts/job.txt'
            },
        },
        {
            # Fails exactly when "a" ran in this very job: in a re-run from failed "a" is
            # taken over, and its job.txt (the original's id) must still reach this task.
            "name": "b",
            "type": "shell",
            "depends_on": ["a"],
            "max_attempts": 1,
            "payload": {
                "script": "sha256sum /homerun/inputs/a/out/data.bin"
                ' && test "$(cat /homerun/inputs/a/job.txt)" != "$HOMERUN_JOB_ID"'
            },
        },
    ]
}


def artifact_url(system: System, job_id: str, task_id: str, path: str = "") -> str:
    tail = f"/{path}" if path else ""
    return f"{system.api.url}/v1/jobs/{job_id}/tasks/{task_id}/artifacts{tail}"


async def test_a_50mb_artifact_round_trips_and_a_rerun_reuses_it_until_the_purge(
    system: System, tmp_path: Path
) -> None:
    with system.client() as client:
        job = client.submit(PIPELINE)
    assert system.wait_job(job.id, 180) == "failed"  # b fails where a ran in the same job
    with system.client() as client:
        job = client.get_job(job.id)
        a = next(t for t in job.tasks if t.name == "a")
        b = next(t for t in job.tasks if t.name == "b")
        listed = client.list_artifacts(job.id, a.id)
        detail = client.get_task(job.id, b.id)
    by_path = {item.path: item for item in listed.artifacts}
    assert set(by_path) == {"job.txt", "out/data.bin"} and listed.refused == []
    data = by_path["out/data.bin"]
    assert data.size == 50 * MIB
    assert detail.result is not None
    # The downstream container read exactly the bytes stored.
    assert detail.result.stdout.split()[0] == data.sha256

    # The CLI: list, download all (-o DIR), download one (get -o FILE).
    listing = run_cli(system, "artifacts", job.id)
    assert listing.code == 0, listing.stderr
    assert any(line.endswith("out/data.bin") and "52428800" in line for line in listing.text)
    into = tmp_path / "all"
    every = run_cli(system, "artifacts", job.id, "a", "-o", str(into))
    assert every.code == 0, every.stderr
    assert hashlib.sha256((into / "out" / "data.bin").read_bytes()).hexdigest() == data.sha256
    one = run_cli(
        system, "artifacts", "get", job.id, "a", "out/data.bin", "-o", str(tmp_path / "d")
    )
    assert one.code == 0, one.stderr
    assert hashlib.sha256((tmp_path / "d").read_bytes()).hexdigest() == data.sha256

    # Range requests against the API itself.
    whole = (into / "out" / "data.bin").read_bytes()
    headers = {"Authorization": f"Bearer {system.token}"}
    url = artifact_url(system, job.id, a.id, "out/data.bin")
    async with httpx.AsyncClient(headers=headers, timeout=60) as http:
        part = await http.get(url, headers={"Range": "bytes=1000000-1999999"})
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes 1000000-1999999/{50 * MIB}"
        assert part.content == whole[1_000_000:2_000_000]
        tail = await http.get(url, headers={"Range": "bytes=-10"})
        assert (tail.status_code, tail.content) == (206, whole[-10:])
        past = await http.get(url, headers={"Range": f"bytes={50 * MIB}-"})
        assert past.status_code == 416
        assert past.headers["content-range"] == f"bytes */{50 * MIB}"
        assert past.json()["error"]["code"] == "range_not_satisfiable"
        text = await http.get(artifact_url(system, job.id, a.id, "job.txt"))
        assert text.content == job.id.encode()
        assert text.headers["content-disposition"].startswith('attachment; filename="job.txt"')
        assert text.headers["content-type"].startswith("text/plain")
        missing = await http.get(artifact_url(system, job.id, a.id, "nope"))
        assert missing.status_code == 404

    # Another token's view: 404 for the list and the bytes.
    other = await make_token(system.db, "other")
    other_auth = {"Authorization": f"Bearer {other.plaintext}"}
    async with httpx.AsyncClient(headers=other_auth, timeout=30) as http:
        assert (await http.get(artifact_url(system, job.id, a.id))).status_code == 404
        assert (await http.get(url)).status_code == 404

    # A re-run from failed: a is taken over, its artifacts copied, and b reads them.
    with system.client() as client:
        again = client.rerun(job.id, failed_only=True)
    assert system.wait_job(again.id, 120) == "succeeded"
    with system.client() as client:
        again = client.get_job(again.id)
        a2 = next(t for t in again.tasks if t.name == "a")
        copied = {i.path: i.sha256 for i in client.list_artifacts(again.id, a2.id).artifacts}
    assert copied == {p: i.sha256 for p, i in by_path.items()}

    # The purge: the original job's artifacts go with it, the re-run's copy stays.
    original = [
        str(r["id"])
        for r in await system.db.fetch_all(
            "SELECT id FROM artifacts WHERE task_id = :t", {"t": a.id}
        )
    ]
    assert len(original) == 2
    async with system.db.connection() as conn, conn.transaction():
        await retention.unlink_reruns(conn, [job.id])
        assert await retention.delete_jobs(conn, [job.id]) == 1
    left = await system.db.fetch_val(
        "SELECT count(*) FROM artifacts WHERE task_id = :t", {"t": a.id}
    )
    chunks_left = await system.db.fetch_val(
        "SELECT count(*) FROM artifact_chunks WHERE artifact_id = ANY(CAST(:ids AS uuid[]))",
        {"ids": original},
    )
    assert (left, chunks_left) == (0, 0)
    kept = tmp_path / "kept"
    got = run_cli(system, "artifacts", "get", again.id, "a", "out/data.bin", "-o", str(kept))
    assert got.code == 0, got.stderr
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == data.sha256
