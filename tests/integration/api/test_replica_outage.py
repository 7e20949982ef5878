"""The streaming replica goes away while clients read and write, then comes back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import eventually
from tests.integration.api.conftest import ReplicatedDb
from tests.integration.api.support import (
    bearer,
    metric,
    new_token,
    running_api,
    settings_for,
)
from tests.integration.replica import PgCluster

pytestmark = pytest.mark.integration

JOB = {"tasks": [{"type": "echo", "payload": {"message": "hi"}}]}


async def test_replica_outage_is_invisible_to_clients(
    pg_cluster: PgCluster, replicated_db: ReplicatedDb, queue_redis_url: str, events_redis_url: str
) -> None:
    settings = settings_for(
        replicated_db.primary,
        queue_redis_url,
        events_redis_url,
        database_replica_url=replicated_db.replica,
        read_your_writes_seconds=0.5,
        replica_probe_seconds=0.2,
    )
    _, writer = await new_token(replicated_db.primary, "writer")
    reader_id, reader = await new_token(replicated_db.primary, "reader")
    async with running_api(settings) as (app, client):
        state = app.state.homerun
        seeded = []
        for _ in range(3):
            r = await client.post("/v1/jobs", json=JOB, headers=bearer(reader))
            seeded.append(r.json()["id"])
        # The reader's reads leave the primary once its read-your-writes window is over.
        await eventually(
            lambda: _not(state.reads.pinned(reader_id)), within=10, message="the pin to end"
        )

        replica_reads = metric("homerun_db_reads_total", target="replica")
        listed = await client.get("/v1/jobs", headers=bearer(reader))
        assert len(listed.json()["jobs"]) == 3
        assert metric("homerun_db_reads_total", target="replica") > replica_reads

        answers: list[tuple[str, int]] = []
        wrong: list[str] = []
        stop = asyncio.Event()

        async def writer_loop() -> None:
            while not stop.is_set():
                created = await client.post("/v1/jobs", json=JOB, headers=bearer(writer))
                answers.append(("create", created.status_code))
                job_id = created.json()["id"]
                got = await client.get(f"/v1/jobs/{job_id}", headers=bearer(writer))
                answers.append(("get own new job", got.status_code))
                cancel = await client.post(f"/v1/jobs/{job_id}/cancel", headers=bearer(writer))
                answers.append(("cancel", cancel.status_code))
                after = await client.get(f"/v1/jobs/{job_id}", headers=bearer(writer))
                answers.append(("get own cancelled job", after.status_code))
                if after.status_code == 200 and after.json()["status"] != "cancelled":
                    wrong.append(f"stale status {after.json()['status']} after cancel")

        async def reader_loop(i: int) -> None:
            while not stop.is_set():
                page = await client.get("/v1/jobs", headers=bearer(reader))
                answers.append(("list", page.status_code))
                if page.status_code == 200 and len(page.json()["jobs"]) != 3:
                    wrong.append(f"list shows {len(page.json()['jobs'])} jobs")
                one = await client.get(f"/v1/jobs/{seeded[i]}", headers=bearer(reader))
                answers.append(("get", one.status_code))

        workers = [asyncio.create_task(writer_loop()) for _ in range(2)]
        workers += [asyncio.create_task(reader_loop(i)) for i in range(3)]
        try:
            await eventually(
                lambda: len(answers) > 40, within=10, message="traffic before the outage"
            )
            fallbacks = metric("homerun_replica_fallbacks_total")

            await asyncio.to_thread(pg_cluster.replica.stop)
            await eventually(
                lambda: not state.db.replica_up, within=10, message="the replica marked down"
            )
            during = len(answers)
            await eventually(
                lambda: len(answers) > during + 80, within=10, message="traffic during the outage"
            )
            assert metric("homerun_replica_fallbacks_total") > fallbacks
            ready = await client.get("/readyz")
            assert ready.status_code == 200
            assert ready.json()["replica"] == {
                "configured": True,
                "up": False,
                "fallbacks": state.db.fallbacks,
                "primary_fallbacks": 0,
            }
            metrics_text = (await client.get("/metrics")).text
            assert "homerun_replica_up 0.0" in metrics_text
            assert 'homerun_replica_fallbacks_total{reason="replica_down"}' in metrics_text

            await asyncio.to_thread(pg_cluster.replica.start)
            await eventually(lambda: state.db.replica_up, within=30, message="the replica back")
            back = metric("homerun_db_reads_total", target="replica")
            await eventually(
                lambda: metric("homerun_db_reads_total", target="replica") > back + 20,
                within=10,
                message="reads served by the replica again",
            )
            assert (await client.get("/readyz")).json()["replica"]["up"] is True
        finally:
            stop.set()
            # Every worker finishes before the app shuts down, even if one of them failed.
            crashed = [r for r in await asyncio.gather(*workers, return_exceptions=True) if r]
        assert not crashed, crashed

    failed = [(what, status) for what, status in answers if status not in (200, 201, 202)]
    assert not failed, f"{len(failed)} of {len(answers)} requests failed: {failed[:10]}"
    assert not wrong, wrong[:10]


async def _not(value: Any) -> bool:
    return not await value


async def test_primary_outage_is_a_clear_503_for_writes_while_reads_go_on(
    pg_cluster: PgCluster, replicated_db: ReplicatedDb, queue_redis_url: str, events_redis_url: str
) -> None:
    settings = settings_for(
        replicated_db.primary,
        queue_redis_url,
        events_redis_url,
        database_replica_url=replicated_db.replica,
        # Long enough that the token's reads are still pinned to the primary when it goes.
        read_your_writes_seconds=600,
    )
    reader_id, reader = await new_token(replicated_db.primary, "reader")
    async with running_api(settings) as (app, client):
        state = app.state.homerun
        job_id = (await client.post("/v1/jobs", json=JOB, headers=bearer(reader))).json()["id"]
        assert await state.reads.pinned(reader_id)
        await eventually(
            lambda: pg_cluster.replica_has(
                replicated_db.primary.rsplit("/", 1)[1],
                f"SELECT EXISTS (SELECT 1 FROM jobs WHERE id = '{job_id}')",
            ),
            within=30,
            message="the job on the replica",
        )
        await asyncio.to_thread(pg_cluster.primary.stop)
        try:
            refused = await client.post("/v1/jobs", json=JOB, headers=bearer(reader))
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "unavailable"
            assert refused.headers["retry-after"] == "2"

            async def unready() -> bool:  # a probe's answer serves /readyz for a second
                ready = await client.get("/readyz")
                return ready.status_code == 503 and ready.json()["primary"]["up"] is False

            await eventually(unready, within=5, message="/readyz to see the primary down")
            # Reads pinned to the primary are answered by the replica while it is gone.
            got = await client.get(f"/v1/jobs/{job_id}", headers=bearer(reader))
            assert got.status_code == 200 and got.json()["id"] == job_id
            listed = await client.get("/v1/jobs", headers=bearer(reader))
            assert listed.status_code == 200
            assert [j["id"] for j in listed.json()["jobs"]] == [job_id]
            assert state.db.primary_fallbacks >= 2
            assert (await client.get("/readyz")).json()["replica"]["primary_fallbacks"] >= 2
        finally:
            await asyncio.to_thread(pg_cluster.primary.start)

        async def accepted() -> bool:
            r = await client.post("/v1/jobs", json=JOB, headers=bearer(reader))
            assert r.status_code in (201, 503), r.text
            return r.status_code == 201

        await eventually(accepted, within=10, message="writes to work again")

        async def ready_again() -> bool:
            return (await client.get("/readyz")).status_code == 200

        await eventually(ready_again, within=5, message="/readyz to see the primary back")
    await eventually(
        lambda: pg_cluster.streaming(), within=30, message="the replica to stream again"
    )
