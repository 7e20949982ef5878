"""``GET /v1/task-types`` from ``core.app.create_app``: every plugin's types, as registered."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator

import homerun_wordcount
import httpx
import pytest
from databases import Database

from core.app import create_app
from core.settings import Settings
from core.tokens import create_token
from plugins.builtin import container, python, shell

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    db = Database(settings.database_url)
    await db.connect()
    try:
        _, token = await create_token(db, "plugins")
    finally:
        await db.disconnect()
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://homerun.test",
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            yield client


@pytest.fixture
def settings(migrated_database_url: str, queue_redis_url: str) -> Settings:
    return Settings(database_url=migrated_database_url, queue_redis_url=queue_redis_url)


async def test_lists_the_builtins_and_the_entry_point_plugin(settings: Settings) -> None:
    async with serving(settings) as client:
        response = await client.get("/v1/task-types")
    assert response.status_code == 200
    listed = {t["name"]: t for t in response.json()["task_types"]}
    assert list(listed) == ["container", "python", "shell", "wordcount"]
    for module in (container, python, shell):
        entry = listed[module.NAME]
        assert entry["payload_schema"] == module.PAYLOAD_SCHEMA
        assert entry["description"] == module.TASK_TYPE.description
    assert listed["wordcount"]["payload_schema"] == homerun_wordcount.PAYLOAD_SCHEMA


async def test_a_disabled_plugin_is_not_listed(settings: Settings) -> None:
    disabled = dataclasses.replace(settings, disabled_plugins=("wordcount",))
    async with serving(disabled) as client:
        response = await client.get("/v1/task-types")
    names = [t["name"] for t in response.json()["task_types"]]
    assert names == ["container", "python", "shell"]


async def test_requires_a_token(settings: Settings) -> None:
    async with serving(settings) as client:
        response = await client.get("/v1/task-types", headers={"Authorization": ""})
    assert response.status_code == 401


@pytest.mark.parametrize(
    "image",
    [
        "alpine:5000/evil/x:1",  # pulled from a registry named "alpine", port 5000
        "alpine:3@sha256:" + "0" * 64,  # a digest overrides the allowed tag
    ],
)
async def test_a_container_image_that_only_looks_allowed_is_refused(
    settings: Settings, image: str
) -> None:
    allowing = dataclasses.replace(settings, allowed_images=("alpine:*",))
    job = {"tasks": [{"type": "container", "payload": {"image": image, "argv": ["id"]}}]}
    async with serving(allowing) as client:
        refused = await client.post("/v1/jobs", json=job)
        allowed = await client.post(
            "/v1/jobs",
            json={
                "tasks": [{"type": "container", "payload": {"image": "alpine:3", "argv": ["id"]}}]
            },
        )
    assert refused.status_code == 422, refused.text
    (detail,) = refused.json()["error"]["details"]
    assert detail["loc"][-1] == "image"
    assert f"image {image!r} is not allowed on this homerun (allowed: alpine:*)" in detail["msg"]
    assert allowed.status_code == 201, allowed.text
