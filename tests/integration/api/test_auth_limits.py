"""Tokens, the admin token from a file, and the per-token rate limit."""

from __future__ import annotations

import dataclasses
import logging

import pytest
import redis
from databases import Database

from core import keys, tokens
from tests.conftest import eventually, free_port
from tests.harness.stores import redis_server
from tests.integration.api.conftest import Api
from tests.integration.api.support import bearer, metric, new_token, running_api

pytestmark = pytest.mark.integration


async def test_token_lifecycle(api: Api) -> None:
    db = Database(api.db.primary)
    await db.connect()
    try:
        token_id, plaintext = await tokens.create_token(db, "ci")
        assert plaintext.startswith(tokens.TOKEN_PREFIX)
        stored = await db.fetch_one("SELECT hash FROM tokens WHERE id = :id", {"id": token_id})
        assert stored is not None and bytes(stored["hash"]) == tokens.hash_token(plaintext)
        assert plaintext.encode() not in bytes(stored["hash"])  # only the hash is kept
        listed = {t.id: t for t in await tokens.list_tokens(db)}
        assert listed[token_id].name == "ci" and listed[token_id].revoked_at is None

        ok = await api.client.get("/v1/task-types", headers=bearer(plaintext))
        assert ok.status_code == 200
        assert await tokens.revoke_token(db, token_id) is True
        assert await tokens.revoke_token(db, token_id) is False  # already revoked
        assert await tokens.revoke_token(db, "not-a-uuid") is False
        assert [
            t.revoked_at is not None for t in await tokens.list_tokens(db) if t.id == token_id
        ] == [True]
    finally:
        await db.disconnect()
    refused = await api.client.get("/v1/task-types", headers=bearer(plaintext))
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")


async def test_admin_token_comes_from_settings_and_is_upserted(api: Api) -> None:
    settings = dataclasses.replace(api.settings, admin_token="hr_admin-secret-from-a-file")
    async with running_api(settings) as (app, client):
        first_id = app.state.homerun.admin_token_id
        r = await client.get("/v1/jobs", headers=bearer("hr_admin-secret-from-a-file"))
        assert r.status_code == 200
    async with running_api(settings) as (app, _):  # a restart, or a second replica
        assert app.state.homerun.admin_token_id == first_id
    db = Database(api.db.primary)
    await db.connect()
    try:
        rows = await db.fetch_all("SELECT is_admin FROM tokens WHERE name = 'admin'")
    finally:
        await db.disconnect()
    assert [bool(r["is_admin"]) for r in rows] == [True]


async def test_revoked_admin_token_stays_revoked_across_restarts(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "hr_admin-secret-that-leaked"
    settings = dataclasses.replace(api.settings, admin_token=secret)
    async with running_api(settings) as (app, client):
        admin_id = app.state.homerun.admin_token_id
        assert (await client.get("/v1/jobs", headers=bearer(secret))).status_code == 200
    db = Database(api.db.primary)
    await db.connect()
    try:
        assert await tokens.revoke_token(db, admin_id) is True
        # The attack: the leaked secret is still in the file; the API restarts.
        with caplog.at_level(logging.ERROR, logger="core.app"):
            async with running_api(settings) as (app, client):
                assert app.state.homerun.admin_token_id is None
                refused = await client.get("/v1/jobs", headers=bearer(secret))
                assert refused.status_code == 401
        row = await db.fetch_one(
            "SELECT is_admin, revoked_at FROM tokens WHERE id = :id", {"id": admin_id}
        )
    finally:
        await db.disconnect()
    assert row is not None and row["revoked_at"] is not None
    assert [r.getMessage() for r in caplog.records if "revoked" in r.getMessage()] == [
        f"starting without an admin token: the configured admin token (id {admin_id}) was"
        f" revoked at {row['revoked_at'].isoformat()}; revocation is final: put a new secret"
        " in the admin token file to have an admin token again"
    ]


async def test_admin_secret_equal_to_a_plain_token_does_not_promote_it(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    plain_id, plaintext = await new_token(api.db.primary, "ci")
    settings = dataclasses.replace(api.settings, admin_token=plaintext)
    with caplog.at_level(logging.ERROR, logger="core.app"):
        async with running_api(settings) as (app, client):
            assert app.state.homerun.admin_token_id is None
            # Still the plain token it was: it works, as itself.
            assert (await client.get("/v1/jobs", headers=bearer(plaintext))).status_code == 200
    db = Database(api.db.primary)
    await db.connect()
    try:
        rows = await db.fetch_all("SELECT id, is_admin FROM tokens WHERE is_admin")
    finally:
        await db.disconnect()
    assert rows == []
    assert any(
        f"is the non-admin token {plain_id}; it is not promoted" in r.getMessage()
        for r in caplog.records
    )


async def test_rate_limit_is_shared_across_api_replicas(api: Api, token: str) -> None:
    settings = dataclasses.replace(api.settings, rate_limit_per_second=0.5, rate_limit_burst=4)
    limited = metric("homerun_rate_limited_total")
    async with running_api(settings) as (_, one), running_api(settings) as (_, two):
        statuses = []
        for client in (one, two, one, two):
            statuses.append((await client.get("/v1/task-types", headers=bearer(token))).status_code)
        assert statuses == [200, 200, 200, 200]
        refused = await two.get("/v1/task-types", headers=bearer(token))
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 2
        # Another token has its own bucket.
        assert (await one.get("/healthz")).status_code == 200
    assert metric("homerun_rate_limited_total") == limited + 1


async def test_the_rate_limit_holds_without_redis(api: Api, token: str) -> None:
    settings = dataclasses.replace(
        api.settings,
        queue_redis_url=f"redis://127.0.0.1:{free_port()}/0",
        rate_limit_per_second=0.5,
        rate_limit_burst=1,
    )
    errors = metric("homerun_rate_limiter_errors_total")
    async with running_api(settings) as (_, client):
        statuses = [
            (await client.get("/v1/task-types", headers=bearer(token))).status_code
            for _ in range(3)
        ]
    assert statuses == [200, 429, 429]  # the process's own bucket, same rate and burst
    assert metric("homerun_rate_limiter_errors_total") == errors + 3


def fill(redis_url: str) -> int:
    """Write into a Redis until it refuses writes (maxmemory, noeviction); bytes written.

    Then the limit is lowered 1 MiB below what it holds: a connection's buffers (this one's
    closing, the API's opening) come and go by tens of KiB, and must not bring it back
    under the limit between the fill and the requests.
    """
    client = redis.Redis.from_url(redis_url)
    written = 0
    try:
        for n in range(10_000):
            try:
                client.set(f"filler:{n}", b"x" * 64 * 1024)
            except redis.exceptions.OutOfMemoryError:  # "OOM command not allowed ..."
                break
            written += 64 * 1024
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", used - 1024 * 1024)
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            client.set("probe", b"x")
    finally:
        client.close()
    return written


async def test_filling_the_queue_redis_does_not_turn_the_rate_limit_off(api: Api) -> None:
    token_id, token = await new_token(api.db.primary, "flooder")
    limits = ("--maxmemory", "4mb", "--maxmemory-policy", "noeviction")
    with redis_server("full", limits) as full:
        settings = dataclasses.replace(
            api.settings, queue_redis_url=full.url, rate_limit_per_second=0.5, rate_limit_burst=3
        )

        async def statuses(n: int) -> list[int]:
            return [
                (await client.get("/v1/task-types", headers=bearer(token))).status_code
                for _ in range(n)
            ]

        async with running_api(settings) as (_, client):
            assert await statuses(1) == [200]  # Redis's bucket: 2 left there
            # The attack: fill the Redis the limiter writes its buckets to.
            assert fill(full.url) > 0
            errors = metric("homerun_rate_limiter_errors_total")
            # Before, every one of these passed unchecked: the limit was off.
            assert await statuses(5) == [200, 200, 200, 429, 429]  # a local bucket of 3
            assert metric("homerun_rate_limiter_errors_total") == errors + 5
            refused = await client.get("/v1/task-types", headers=bearer(token))
            assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 2

            # Once Redis takes writes again, its bucket decides again.
            sync = redis.Redis.from_url(full.url)
            try:
                sync.flushall()

                async def redis_bucket_used() -> bool:
                    await statuses(1)
                    return bool(sync.exists(keys.rate_limit(token_id)))

                await eventually(redis_bucket_used, message="the Redis bucket in use again")
            finally:
                sync.close()


async def test_request_metrics_use_route_templates(api: Api, token: str) -> None:
    before = metric(
        "homerun_http_requests_total", method="GET", route="/v1/jobs/{job_id}", status="404"
    )
    for _ in range(2):
        await api.client.get("/v1/jobs/00000000-0000-4000-8000-000000000000", headers=bearer(token))
    after = metric(
        "homerun_http_requests_total", method="GET", route="/v1/jobs/{job_id}", status="404"
    )
    assert after == before + 2
    text = (await api.client.get("/metrics")).text
    assert "homerun_http_request_seconds_bucket" in text
