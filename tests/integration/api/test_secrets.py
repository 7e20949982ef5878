"""/v1/secrets: sealed at rest, token-scoped, names checked at submission, rotation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import httpx
import pytest

from core.sealing import Keyring, generate_line
from core.store import secrets as store
from tests.integration.api.conftest import ReplicatedDb
from tests.integration.api.support import bearer, new_token, running_api, settings_for

pytestmark = pytest.mark.integration

VALUE = "s3cret-value-that-must-never-leak"


@pytest.fixture
def keyring_text() -> str:
    return generate_line("k1")


@pytest.fixture
async def client(
    replicated_db: ReplicatedDb, queue_redis_url: str, events_redis_url: str, keyring_text: str
) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_for(
        replicated_db.primary,
        queue_redis_url,
        events_redis_url,
        database_replica_url=replicated_db.replica,
        secrets_keyring=keyring_text,
        max_secrets_per_token=3,
        secret_max_bytes=100,
    )
    async with running_api(settings) as (_, client):
        yield client


def job(*secrets: str) -> dict[str, Any]:
    return {
        "tasks": [
            {"name": "a", "type": "echo", "payload": {"message": "x"}, "secrets": list(secrets)}
        ]
    }


async def test_put_list_delete_never_answers_a_value(
    client: httpx.AsyncClient, replicated_db: ReplicatedDb
) -> None:
    _, token = await new_token(replicated_db.primary, "alice")
    h = bearer(token)
    created = await client.put("/v1/secrets/backup-key", json={"value": VALUE}, headers=h)
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "backup-key" and created.json()["key_id"] == "k1"
    replaced = await client.put("/v1/secrets/backup-key", json={"value": VALUE + "2"}, headers=h)
    assert replaced.status_code == 200
    assert replaced.json()["created_at"] == created.json()["created_at"]
    assert replaced.json()["updated_at"] > created.json()["updated_at"]
    listed = await client.get("/v1/secrets", headers=h)
    assert listed.status_code == 200
    assert [s["name"] for s in listed.json()["secrets"]] == ["backup-key"]
    for answer in (created, replaced, listed):
        assert VALUE not in answer.text
    # At rest: sealed, the plaintext nowhere in the row.
    conn = await asyncpg.connect(replicated_db.primary)
    try:
        row = await conn.fetchrow("SELECT * FROM secrets")
    finally:
        await conn.close()
    assert row is not None and VALUE.encode() not in bytes(row["ciphertext"])
    assert (await client.delete("/v1/secrets/backup-key", headers=h)).status_code == 204
    gone = await client.delete("/v1/secrets/backup-key", headers=h)
    assert gone.status_code == 404 and gone.json()["error"]["details"][0]["loc"] == ["path", "name"]
    assert (await client.get("/v1/secrets", headers=h)).json() == {"secrets": []}


async def test_another_tokens_secret_is_not_found(
    client: httpx.AsyncClient, replicated_db: ReplicatedDb
) -> None:
    _, alice = await new_token(replicated_db.primary, "alice")
    _, mallory = await new_token(replicated_db.primary, "mallory")
    await client.put("/v1/secrets/k", json={"value": VALUE}, headers=bearer(alice))
    assert (await client.get("/v1/secrets", headers=bearer(mallory))).json() == {"secrets": []}
    assert (await client.delete("/v1/secrets/k", headers=bearer(mallory))).status_code == 404
    refused = await client.post("/v1/jobs", json=job("k"), headers=bearer(mallory))
    assert refused.status_code == 422
    # Mallory's PUT of the same name is her own secret; alice's is untouched.
    await client.put("/v1/secrets/k", json={"value": "mine"}, headers=bearer(mallory))
    assert [
        s["name"]
        for s in (await client.get("/v1/secrets", headers=bearer(alice))).json()["secrets"]
    ] == ["k"]
    assert (await client.post("/v1/jobs", json=job("k"), headers=bearer(alice))).status_code == 201


@pytest.mark.parametrize(
    ("name", "body", "loc", "message"),
    [
        (".hidden", {"value": "v"}, ["path", "name"], "must be 1-64 letters"),
        ("a" * 65, {"value": "v"}, ["path", "name"], "must be 1-64 letters"),
        ("ok", {"value": ""}, ["body", "value"], "non-empty string"),
        ("ok", {"value": 5}, ["body", "value"], "non-empty string"),
        ("ok", {"value": "v", "extra": 1}, ["body", "extra"], "unknown field"),
        ("ok", ["v"], ["body"], "JSON object"),
        ("ok", {"value": "x" * 101}, ["body", "value"], "101 bytes; the limit is 100"),
    ],
)
async def test_bad_names_and_values_are_a_422_that_says_where(
    client: httpx.AsyncClient,
    replicated_db: ReplicatedDb,
    name: str,
    body: Any,
    loc: list[str],
    message: str,
) -> None:
    _, token = await new_token(replicated_db.primary, "alice")
    answer = await client.put(f"/v1/secrets/{name}", json=body, headers=bearer(token))
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "validation_error" and message in error["message"]
    assert error["details"][0]["loc"] == loc


async def test_the_per_token_limit_is_a_409(
    client: httpx.AsyncClient, replicated_db: ReplicatedDb
) -> None:
    _, token = await new_token(replicated_db.primary, "alice")
    h = bearer(token)
    for n in range(3):
        assert (await client.put(f"/v1/secrets/s{n}", json={"value": "v"}, headers=h)).is_success
    over = await client.put("/v1/secrets/s3", json={"value": "v"}, headers=h)
    assert over.status_code == 409 and over.json()["error"]["code"] == "too_many_secrets"
    # Replacing one of the three is not a fourth.
    assert (await client.put("/v1/secrets/s0", json={"value": "w"}, headers=h)).status_code == 200


async def test_a_task_listing_an_unknown_secret_is_refused_naming_it(
    client: httpx.AsyncClient, replicated_db: ReplicatedDb
) -> None:
    _, token = await new_token(replicated_db.primary, "alice")
    h = bearer(token)
    await client.put("/v1/secrets/known", json={"value": VALUE}, headers=h)
    refused = await client.post("/v1/jobs", json=job("known", "nope"), headers=h)
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert "unknown secret 'nope'" in error["message"]
    assert [d["loc"] for d in error["details"]] == [["body", "tasks", 0, "secrets", 1]]
    malformed = await client.post("/v1/jobs", json=job("bad name"), headers=h)
    assert malformed.status_code == 422
    assert malformed.json()["error"]["details"][0]["loc"] == ["body", "tasks", 0, "secrets", 0]
    accepted = await client.post("/v1/jobs", json=job("known"), headers=h)
    assert accepted.status_code == 201, accepted.text
    assert VALUE not in accepted.text


async def test_without_a_keyring_the_secrets_api_is_a_503(
    replicated_db: ReplicatedDb, queue_redis_url: str, events_redis_url: str
) -> None:
    settings = settings_for(replicated_db.primary, queue_redis_url, events_redis_url)
    _, token = await new_token(replicated_db.primary, "alice")
    async with running_api(settings) as (_, client):
        answer = await client.put("/v1/secrets/a", json={"value": "v"}, headers=bearer(token))
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "secrets_unconfigured"
        assert "HOMERUN_SECRETS_KEYRING_FILE" in answer.json()["error"]["message"]


async def test_rotation_new_key_seals_old_rows_open_and_reseal_moves_them(
    replicated_db: ReplicatedDb, queue_redis_url: str, events_redis_url: str, keyring_text: str
) -> None:
    from databases import Database

    token_id, token = await new_token(replicated_db.primary, "alice")
    h = bearer(token)
    base = settings_for(replicated_db.primary, queue_redis_url, events_redis_url)
    async with running_api(replace(base, secrets_keyring=keyring_text)) as (_, client):
        for n in range(3):
            await client.put(f"/v1/secrets/old{n}", json={"value": f"{VALUE}{n}"}, headers=h)
    rotated = keyring_text + "\n" + generate_line("k2")
    async with running_api(replace(base, secrets_keyring=rotated)) as (_, client):
        new = await client.put("/v1/secrets/new", json={"value": "fresh"}, headers=h)
        assert new.json()["key_id"] == "k2"
        listed = (await client.get("/v1/secrets", headers=h)).json()["secrets"]
        assert {s["name"]: s["key_id"] for s in listed} == {
            "new": "k2",
            "old0": "k1",
            "old1": "k1",
            "old2": "k1",
        }
    db = Database(replicated_db.primary)
    await db.connect()
    try:
        ring = Keyring.parse(rotated)
        # Old rows still open under the rotated keyring, with the old key.
        sealed = await store.sealed_values(db, token_id, ["old0", "new"])
        assert ring.open(token_id, "old0", sealed["old0"]) == f"{VALUE}0".encode()
        assert await store.reseal_all(db, ring) == 3
        assert await store.reseal_all(db, ring) == 0  # idempotent: nothing left to move
        sealed = await store.sealed_values(db, token_id, ["old0", "old1", "old2", "new"])
        assert {s.key_id for s in sealed.values()} == {"k2"}
        # The old key can go now: a keyring of the new key alone opens every row.
        only_new = Keyring.parse(rotated.splitlines()[-1])
        assert only_new.open(token_id, "old2", sealed["old2"]) == f"{VALUE}2".encode()
        assert only_new.open(token_id, "new", sealed["new"]) == b"fresh"
    finally:
        await db.disconnect()


async def test_a_schedule_whose_job_lists_an_unknown_secret_is_refused(
    client: httpx.AsyncClient, replicated_db: ReplicatedDb
) -> None:
    _, token = await new_token(replicated_db.primary, "alice")
    h = bearer(token)
    body = {"name": "nightly", "cron": "@daily", "job": job("missing")}
    refused = await client.post("/v1/schedules", json=body, headers=h)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["details"][0]["loc"] == ["body", "job", "tasks", 0, "secrets", 0]
    assert "unknown secret 'missing'" in error["message"]
    await client.put("/v1/secrets/missing", json={"value": VALUE}, headers=h)
    created = await client.post("/v1/schedules", json=body, headers=h)
    assert created.status_code == 201, created.text
    changed = await client.patch(
        f"/v1/schedules/{created.json()['id']}", json={"job": job("other")}, headers=h
    )
    assert changed.status_code == 422
    assert changed.json()["error"]["details"][0]["loc"] == ["body", "job", "tasks", 0, "secrets", 0]
