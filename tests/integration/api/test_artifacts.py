"""/v1/jobs/{id}/tasks/{task}/artifacts over a real primary and streaming replica.

Artifacts are saved the way the runner saves them (``core.store.artifacts.save``); the API
lists them, streams them whole or by range, refuses another token's, reads the chunks
from the replica and from the primary when the replica has not got them yet. Submitted
``files`` are checked at submission.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import os
from typing import Any

import pytest
import redis.asyncio as aioredis
from databases import Database

from core import keys
from core.store import artifacts as store
from tests.integration.api.conftest import Api
from tests.integration.api.support import bearer, metric, running_api
from tests.integration.replica import PgCluster

pytestmark = pytest.mark.integration

# Three chunks and a bit: ranges that cross chunk boundaries.
DATA = os.urandom(3 * store.CHUNK_BYTES + 1234)
SHA = hashlib.sha256(DATA).hexdigest()


def job(**task: Any) -> dict[str, Any]:
    return {"tasks": [{"name": "a", "type": "echo", "payload": {"message": "x"}, **task}]}


async def saved(api: Api, token: str, files: dict[str, bytes]) -> tuple[str, str]:
    """(job id, task id) of a new job whose task's attempt 1 left ``files``."""
    created = await api.client.post("/v1/jobs", json=job(), headers=bearer(token))
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    task_id = created.json()["tasks"][0]["id"]
    db = Database(api.db.primary)
    await db.connect()
    try:
        await db.execute("UPDATE tasks SET attempts = 1 WHERE id = :t", {"t": task_id})
        entries = [
            store.StoredFile(
                path,
                "text/plain" if path.endswith(".txt") else "application/octet-stream",
                functools.partial(io.BytesIO, data),
            )
            for path, data in files.items()
        ]
        assert await store.save(db, task_id, 1, entries, [("link", "a symlink (never followed)")])
        # Fenced: an older attempt writes nothing.
        assert not await store.save(db, task_id, 0, [], [])
    finally:
        await db.disconnect()
    return job_id, task_id


async def test_list_and_ranged_downloads(api: Api, token: str, other_token: str) -> None:
    job_id, task_id = await saved(api, token, {"out/data.bin": DATA, "note.txt": b"hi"})
    base = f"/v1/jobs/{job_id}/tasks/{task_id}/artifacts"
    h = bearer(token)
    listed = await api.client.get(base, headers=h)
    assert listed.status_code == 200
    body = listed.json()
    assert [(a["path"], a["size"], a["sha256"]) for a in body["artifacts"]] == [
        ("note.txt", 2, hashlib.sha256(b"hi").hexdigest()),
        ("out/data.bin", len(DATA), SHA),
    ]
    assert body["refused"] == [{"path": "link", "reason": "a symlink (never followed)"}]

    whole = await api.client.get(f"{base}/out/data.bin", headers=h)
    assert whole.status_code == 200 and whole.content == DATA
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["etag"] == f'"{SHA}"'
    assert whole.headers["content-length"] == str(len(DATA))
    n = store.CHUNK_BYTES
    for first, last in [(0, 0), (n - 10, n + 10), (n, 2 * n - 1), (2 * n + 5, len(DATA) - 1)]:
        part = await api.client.get(
            f"{base}/out/data.bin", headers={**h, "Range": f"bytes={first}-{last}"}
        )
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes {first}-{last}/{len(DATA)}"
        assert part.content == DATA[first : last + 1]
    past = await api.client.get(f"{base}/out/data.bin", headers={**h, "Range": "bytes=9999999-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(DATA)}"
    assert past.json()["error"]["details"][0]["loc"] == ["header", "range"]

    # A refused entry has no bytes; another token has no such task.
    assert (await api.client.get(f"{base}/link", headers=h)).status_code == 404
    for url in (base, f"{base}/out/data.bin"):
        other = await api.client.get(url, headers=bearer(other_token))
        assert other.status_code == 404, url


async def test_chunks_the_replica_lacks_come_from_the_primary(
    api: Api, token: str, pg_cluster: PgCluster
) -> None:
    """Replay paused: the replica has neither the row nor the chunks. A second API replica,
    with this token's recent-write mark gone, reads the replica first: the row and then the
    chunks are asked again of the primary (without that, the body would fail midway)."""
    pg_cluster.replica.sql("SELECT pg_wal_replay_pause()")
    try:
        job_id, task_id = await saved(api, token, {"data.bin": DATA})
        redis = aioredis.Redis.from_url(api.settings.queue_redis_url)
        try:
            for key in await redis.keys(keys.recent_write("*")):
                await redis.delete(key)
        finally:
            await redis.aclose()
        async with running_api(api.settings) as (_, other):
            replica_reads = metric("homerun_db_reads_total", target="replica")
            got = await other.get(
                f"/v1/jobs/{job_id}/tasks/{task_id}/artifacts/data.bin", headers=bearer(token)
            )
            assert got.status_code == 200, got.text
            assert hashlib.sha256(got.content).hexdigest() == SHA
            assert metric("homerun_db_reads_total", target="replica") > replica_reads
    finally:
        pg_cluster.replica.sql("SELECT pg_wal_replay_resume()")


async def test_submitted_files_are_checked(api: Api, token: str) -> None:
    h = bearer(token)
    ok = await api.client.post(
        "/v1/jobs", json=job(files={"data.csv": base64.b64encode(b"a,b").decode()}), headers=h
    )
    assert ok.status_code == 201, ok.text
    bad = await api.client.post("/v1/jobs", json=job(files={"data.csv": "abc"}), headers=h)
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["loc"] == ["body", "tasks", 0, "files", "data.csv"]
    escape = await api.client.post("/v1/jobs", json=job(files={"../x": "YQ=="}), headers=h)
    assert escape.status_code == 422
    too_many = {f"f{i}": "YQ==" for i in range(api.settings.max_task_files + 1)}
    many = await api.client.post("/v1/jobs", json=job(files=too_many), headers=h)
    assert many.status_code == 422
