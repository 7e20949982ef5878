"""The job API's happy paths against a real primary, streaming replica and queue Redis."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
import redis.asyncio as aioredis
from databases import Database

from core import keys, queue, transitions
from core.jsondepth import MAX_JSON_DEPTH
from core.models import AttemptStatus, FailureKind
from tests.conftest import eventually, free_port
from tests.integration.api.conftest import Api
from tests.integration.api.support import (
    bearer,
    metric,
    new_token,
    running_api,
)
from tests.integration.replica import PgCluster

pytestmark = pytest.mark.integration


def pipeline(**top: Any) -> dict[str, Any]:
    return {
        "name": "nightly build",
        "labels": {"team": "infra", "env": "ci"},
        "tasks": [
            {"name": "fetch", "type": "shell", "payload": {"script": "echo hi"}, "priority": 5},
            {"name": "build", "type": "echo", "payload": {"message": "b"}, "depends_on": ["fetch"]},
            {
                "type": "echo",
                "payload": {"message": "c"},
                "depends_on": ["fetch", "build"],
                "timeout_s": 30,
                "max_attempts": 2,
            },
        ],
        **top,
    }


async def test_submit_read_cancel(api: Api, token: str) -> None:
    h = bearer(token)
    response = await api.client.post("/v1/jobs", json=pipeline(), headers=h)
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["status"] == "queued" and job["labels"] == {"team": "infra", "env": "ci"}
    tasks = {t["name"]: t for t in job["tasks"]}
    assert list(tasks) == ["fetch", "build", "task-3"]  # unnamed tasks are named by position
    assert {n: t["status"] for n, t in tasks.items()} == {
        "fetch": "queued",
        "build": "pending",
        "task-3": "pending",
    }
    assert tasks["task-3"]["depends_on"] == ["build", "fetch"]
    assert tasks["task-3"]["timeout_s"] == 30 and tasks["task-3"]["max_attempts"] == 2
    assert tasks["build"]["max_attempts"] == api.settings.default_max_attempts

    # Only the ready task went to the queue Redis.
    client = aioredis.Redis.from_url(api.settings.queue_redis_url)
    try:
        assert await queue.queued_task_ids(client) == {tasks["fetch"]["id"]}
    finally:
        await client.aclose()

    got = await api.client.get(f"/v1/jobs/{job['id']}", headers=h)
    assert got.status_code == 200 and got.json() == job

    # Run the first task through the state machine so it has attempts and results.
    db = Database(api.db.primary)
    await db.connect()
    try:
        fetch_id = tasks["fetch"]["id"]
        claim = await transitions.claim_attempt(db, fetch_id, runner_id="r1", lease_seconds=30)
        assert claim is not None
        await transitions.finish_attempt(
            db,
            fetch_id,
            1,
            transitions.Outcome(
                AttemptStatus.FAILED,
                exit_code=3,
                stdout="out",
                stderr="e" * 10,
                stderr_truncated=True,
                error="exit 3",
                failure_kind=FailureKind.TASK,
            ),
            retry_base_seconds=0,
        )
        claim = await transitions.claim_attempt(db, fetch_id, runner_id="r2", lease_seconds=30)
        assert claim is not None and claim.attempt == 2
        await transitions.finish_attempt(
            db,
            fetch_id,
            2,
            transitions.Outcome(
                AttemptStatus.SUCCEEDED, exit_code=0, stdout="hi\n", output={"artifact": "a.tgz"}
            ),
        )
    finally:
        await db.disconnect()

    detail = (await api.client.get(f"/v1/jobs/{job['id']}/tasks/{fetch_id}", headers=h)).json()
    assert detail["status"] == "succeeded" and detail["payload"] == {"script": "echo hi"}
    assert [a["status"] for a in detail["attempts"]] == ["failed", "succeeded"]
    first, second = detail["attempts"]
    assert first["runner_id"] == "r1" and first["failure_kind"] == "task"
    attempt_path = f"/v1/jobs/{job['id']}/tasks/{fetch_id}/attempts"
    first = (await api.client.get(f"{attempt_path}/1", headers=h)).json()
    assert first["result"]["exit_code"] == 3 and first["result"]["stderr_truncated"] is True
    second = (await api.client.get(f"{attempt_path}/2", headers=h)).json()
    assert second["result"]["stdout"] == "hi\n" and second["result"]["stdout_truncated"] is False
    assert detail["result"] == second["result"]
    assert detail["result"]["output"] == {"artifact": "a.tgz"} == detail["output"]
    assert detail["output_bytes"] == len('{"artifact": "a.tgz"}')

    cancelled = await api.client.post(f"/v1/jobs/{job['id']}/cancel", headers=h)
    assert cancelled.status_code == 202
    body = cancelled.json()
    assert body["status"] == "cancelled" and body["cancel_requested"] is True
    assert {t["name"]: t["status"] for t in body["tasks"]} == {
        "fetch": "succeeded",
        "build": "cancelled",
        "task-3": "cancelled",
    }
    # Cancelling again is harmless.
    again = await api.client.post(f"/v1/jobs/{job['id']}/cancel", headers=h)
    assert again.status_code == 202 and again.json()["status"] == "cancelled"


async def test_idempotency_key_returns_the_same_job(api: Api, token: str) -> None:
    h = {**bearer(token), "Idempotency-Key": "deploy-42"}
    first = await api.client.post("/v1/jobs", json=pipeline(), headers=h)
    # Same JSON, keys in another order: the same request.
    reordered = dict(reversed(list(pipeline().items())))
    second = await api.client.post("/v1/jobs", json=reordered, headers=h)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["id"] == first.json()["id"]
    conflict = await api.client.post("/v1/jobs", json=pipeline(name="other"), headers=h)
    assert conflict.status_code == 409
    # Keys belong to a token: another token's identical key is another job.
    _, other = await new_token(api.db.primary, "bob")
    theirs = await api.client.post(
        "/v1/jobs", json=pipeline(), headers={**bearer(other), "Idempotency-Key": "deploy-42"}
    )
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]


async def test_list_filters_and_paginates_newest_first(
    api: Api, token: str, other_token: str
) -> None:
    h = bearer(token)
    ids = []
    for i in range(7):
        labels = {"team": "a" if i % 2 else "b", "n": str(i)}
        r = await api.client.post("/v1/jobs", json=pipeline(labels=labels), headers=h)
        ids.append(r.json()["id"])
    await api.client.post("/v1/jobs", json=pipeline(), headers=bearer(other_token))
    await api.client.post(f"/v1/jobs/{ids[0]}/cancel", headers=h)

    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await api.client.get("/v1/jobs", params=params, headers=h)).json()
        assert len(page["jobs"]) <= 3
        seen += [j["id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]  # newest first, each once, none of the other token's

    team_a = (await api.client.get("/v1/jobs", params={"label": "team:a"}, headers=h)).json()
    assert {j["id"] for j in team_a["jobs"]} == {ids[i] for i in (1, 3, 5)}
    both = await api.client.get(
        "/v1/jobs", params=[("label", "team:a"), ("label", "n:3")], headers=h
    )
    assert [j["id"] for j in both.json()["jobs"]] == [ids[3]]
    cancelled = await api.client.get("/v1/jobs", params={"status": "cancelled"}, headers=h)
    assert [j["id"] for j in cancelled.json()["jobs"]] == [ids[0]]
    either = await api.client.get(
        "/v1/jobs", params=[("status", "cancelled"), ("status", "queued")], headers=h
    )
    assert len(either.json()["jobs"]) == 7


async def test_job_is_accepted_when_the_queue_redis_is_down(
    api: Api, token: str, queue_redis_url: str
) -> None:
    dead = dataclasses.replace(api.settings, queue_redis_url=f"redis://127.0.0.1:{free_port()}/0")
    before = metric("homerun_enqueue_failures_total")
    async with running_api(dead) as (_, client):
        r = await client.post("/v1/jobs", json=pipeline(), headers=bearer(token))
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        # Read-your-writes still holds without Redis: the read goes to the primary.
        got = await client.get(f"/v1/jobs/{job_id}", headers=bearer(token))
        assert got.status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["queue_redis"]["up"] is False
    assert metric("homerun_enqueue_failures_total") == before + 1
    # Postgres holds the job: the queued task is there for the reconciler.
    db = Database(api.db.primary)
    await db.connect()
    try:
        queued = await db.fetch_val(
            "SELECT count(*) FROM tasks WHERE job_id = :j AND status = 'queued'", {"j": job_id}
        )
    finally:
        await db.disconnect()
    assert queued == 1


async def test_read_your_writes_with_a_lagging_replica(
    api: Api, token: str, pg_cluster: PgCluster
) -> None:
    """Replay on the replica is paused, so it lags forever: a token still sees its writes,
    through a second API replica that shares only Postgres and the queue Redis."""
    pg_cluster.replica.sql("SELECT pg_wal_replay_pause()")
    try:
        async with running_api(api.settings) as (_, other):
            r = await api.client.post("/v1/jobs", json=pipeline(), headers=bearer(token))
            job_id = r.json()["id"]
            # 1. The recent-write mark in Redis pins this token's reads to the primary.
            primary_reads = metric("homerun_db_reads_total", target="primary")
            listed = await other.get("/v1/jobs", headers=bearer(token))
            assert [j["id"] for j in listed.json()["jobs"]] == [job_id]
            assert metric("homerun_db_reads_total", target="primary") > primary_reads

            # 2. Without the mark, a single job missing on the replica is fetched from the primary.
            redis = aioredis.Redis.from_url(api.settings.queue_redis_url)
            try:
                for key in await redis.keys(keys.recent_write("*")):
                    await redis.delete(key)
            finally:
                await redis.aclose()
            replica_reads = metric("homerun_db_reads_total", target="replica")
            got = await other.get(f"/v1/jobs/{job_id}", headers=bearer(token))
            assert got.status_code == 200 and got.json()["status"] == "queued"
            assert metric("homerun_db_reads_total", target="replica") > replica_reads
            # ... while a list, which has no such check, shows the replica's stale view.
            stale = await other.get("/v1/jobs", headers=bearer(token))
            assert stale.json()["jobs"] == []

            # 3. A cancel through one API replica is seen at once through the other.
            await api.client.post(f"/v1/jobs/{job_id}/cancel", headers=bearer(token))
            after = await other.get(f"/v1/jobs/{job_id}", headers=bearer(token))
            assert after.json()["status"] == "cancelled"
    finally:
        pg_cluster.replica.sql("SELECT pg_wal_replay_resume()")

    database = api.db.replica.rsplit("/", 1)[1]

    async def caught_up() -> bool:
        query = f"SELECT status = 'cancelled' FROM jobs WHERE id = '{job_id}'"
        return pg_cluster.replica_has(database, query)

    await eventually(
        caught_up, within=10, message="the replica to replay the job and its cancellation"
    )


async def test_an_output_stored_too_deep_is_answered_without_it(api: Api, token: str) -> None:
    # Rows like this were written before the runner refused deep output: every GET of the
    # job then answered 500 (RecursionError decoding it). Now the answer leaves it out.
    h = bearer(token)
    body = {"tasks": [{"name": "deep", "type": "echo", "payload": {"message": "x"}}]}
    job = (await api.client.post("/v1/jobs", json=body, headers=h)).json()
    task_id = job["tasks"][0]["id"]
    too_deep = "[" * 960 + "]" * 960
    just_within = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    db = Database(api.db.primary)
    await db.connect()
    try:
        # Attempt 1 failed with a result, attempt 2 succeeded; then the stored outputs are
        # made what the old runner could store.
        assert await transitions.claim_attempt(db, task_id, runner_id="r", lease_seconds=30)
        failed = transitions.Outcome(
            AttemptStatus.FAILED, exit_code=1, error="exit 1", failure_kind=FailureKind.TASK
        )
        await transitions.finish_attempt(db, task_id, 1, failed, retry_base_seconds=0)
        assert await transitions.claim_attempt(db, task_id, runner_id="r", lease_seconds=30)
        await transitions.finish_attempt(
            db, task_id, 2, transitions.Outcome(AttemptStatus.SUCCEEDED, exit_code=0)
        )
        await db.execute(
            "UPDATE tasks SET output = CAST(:v AS jsonb),"
            " output_bytes = octet_length(CAST(:v AS jsonb)::text) WHERE id = :id",
            {"v": too_deep, "id": task_id},
        )
        for attempt, value in ((1, too_deep), (2, just_within)):
            await db.execute(
                "UPDATE results SET output = CAST(:v AS jsonb)"
                " WHERE task_id = :id AND attempt = :n",
                {"v": value, "id": task_id, "n": attempt},
            )
    finally:
        await db.disconnect()
    note = f"output not shown: it nests more than {MAX_JSON_DEPTH} arrays or objects deep"

    async def job_answers() -> bool:
        r = await api.client.get(f"/v1/jobs/{job['id']}", headers=h)
        assert r.status_code == 200, r.text
        (task,) = r.json()["tasks"]
        return task["output"] is None and task["error"] == note

    await eventually(job_answers, message="the job answered without its too-deep output")
    path = f"/v1/jobs/{job['id']}/tasks/{task_id}"
    r = await api.client.get(path, headers=h)
    assert r.status_code == 200, r.text
    detail = r.json()
    assert detail["output"] is None and detail["error"] == note
    assert detail["result"]["output"] == json.loads(just_within)  # within the bound: shown
    assert detail["result"]["error"] is None
    first = await api.client.get(f"{path}/attempts/1", headers=h)
    assert first.status_code == 200, first.text
    result = first.json()["result"]
    assert result["output"] is None and result["error"] == f"exit 1; {note}"


async def test_a_job_with_an_output_stored_too_deep_can_be_rerun(api: Api, token: str) -> None:
    # The re-run reads the original's outputs back: one stored before the depth bound made
    # every POST .../rerun answer 500 (RecursionError), whichever way it was asked.
    h = bearer(token)
    body = {
        "tasks": [
            {"name": "deep", "type": "echo", "payload": {"message": "x"}},
            {"name": "fails", "type": "echo", "payload": {"message": "y"}},
        ]
    }
    job = (await api.client.post("/v1/jobs", json=body, headers=h)).json()
    ids = {t["name"]: t["id"] for t in job["tasks"]}
    db = Database(api.db.primary)
    await db.connect()
    try:
        for name, outcome in (
            ("deep", transitions.Outcome(AttemptStatus.SUCCEEDED, exit_code=0)),
            (
                "fails",
                transitions.Outcome(
                    AttemptStatus.FAILED, exit_code=1, error="no", failure_kind=FailureKind.OUTPUT
                ),
            ),
        ):
            assert await transitions.claim_attempt(db, ids[name], runner_id="r", lease_seconds=30)
            await transitions.finish_attempt(db, ids[name], 1, outcome)
        await db.execute(
            "UPDATE tasks SET output = CAST(:v AS jsonb) WHERE id = :id",
            {"v": "[" * 960 + "]" * 960, "id": ids["deep"]},
        )
    finally:
        await db.disconnect()

    whole = await api.client.post(f"/v1/jobs/{job['id']}/rerun", headers=h)
    assert whole.status_code == 201, whole.text
    assert {t["name"]: t["status"] for t in whole.json()["tasks"]} == {
        "deep": "queued",
        "fails": "queued",
    }
    failed_only = await api.client.post(f"/v1/jobs/{job['id']}/rerun?from=failed", headers=h)
    assert failed_only.status_code == 409, failed_only.text
    error = failed_only.json()["error"]
    assert error["code"] == "output_too_deep"
    assert error["message"] == (
        f"task 'deep' of job {job['id']} succeeded with an output that nests more than"
        f" {MAX_JSON_DEPTH} arrays or objects deep, stored before that bound: it cannot be"
        " taken over; re-run all of the job"
    )
    assert error["details"] == [
        {"loc": ["query", "from"], "msg": "an output to take over is too deep to read"}
    ]
