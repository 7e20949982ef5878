"""Helpers for the API tests: an in-process app with its lifespan, tokens, table counts."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pluggy
from starlette.applications import Starlette

from core.app import create_app
from core.settings import Settings
from core.tokens import create_token
from plugins.manager import make_plugin_manager
from tests.harness.settings import settings_for as settings_for  # the API suites' too
from tests.integration.api.plugin import EchoPlugin

TABLES = ("tokens", "jobs", "tasks", "task_dependencies", "attempts", "results", "events")


def plugin_manager() -> pluggy.PluginManager:
    return make_plugin_manager([EchoPlugin()], load_entry_points=False)


@contextlib.asynccontextmanager
async def running_api(settings: Settings) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    app = create_app(settings, plugin_manager=plugin_manager())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield app, client


async def new_token(dsn: str, name: str = "t", *, admin: bool = False) -> tuple[str, str]:
    """(token_id, plaintext), created on the primary through core.tokens."""
    from databases import Database

    db = Database(dsn)
    await db.connect()
    try:
        return await create_token(db, name, admin=admin)
    finally:
        await db.disconnect()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def row_counts(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        return {t: int(await conn.fetchval(f"SELECT count(*) FROM {t}")) for t in TABLES}
    finally:
        await conn.close()


def metric(name: str, **labels: str) -> float:
    """A sample of the process-wide registry; without labels, the sum over every label set."""
    from core.metrics import REGISTRY

    if labels:
        return float(REGISTRY.get_sample_value(name, labels) or 0.0)
    return sum(
        sample.value
        for family in REGISTRY.collect()
        for sample in family.samples
        if sample.name == name
    )
