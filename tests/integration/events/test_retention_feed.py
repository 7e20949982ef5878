"""``GET /v1/events`` after retention deleted some of the token's jobs: the feed steps over
the holes their events leave in the token's numbering, from the stream and from Postgres."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis.asyncio as aioredis
from databases import Database

from core import tokens
from core.settings import Settings
from homerun import sse
from notifier.retention import Purger
from tests.harness.expired import seed_finished_jobs, stream_entries
from tests.harness.services import ServiceProcess, Services

pytestmark = pytest.mark.integration

DAY = 86400


@pytest.fixture
def api(settings: Settings, services: Services) -> ServiceProcess:
    return services.api(replace(settings, sse_heartbeat_seconds=0.2))


def _ids_now(url: str, token: str, last_event_id: str) -> list[str | None]:
    """The ids of every event the feed sends now, i.e. up to its first heartbeat."""
    headers = {"Authorization": f"Bearer {token}", "Last-Event-ID": last_event_id}
    with httpx.stream(
        "GET", f"{url}/v1/events", headers=headers, timeout=httpx.Timeout(5)
    ) as response:
        assert response.status_code == 200, response.read()
        parser, got = sse.Parser(), list[str | None]()
        for line in response.iter_lines():
            if line.startswith(":"):
                return got
            event = parser.feed(line)
            if event is not None:
                got.append(event.id)
    raise AssertionError("the feed ended by itself")


async def test_the_token_feed_steps_over_deleted_jobs(
    settings: Settings, api: ServiceProcess, db: Database, streams: aioredis.Redis
) -> None:
    dsn = settings.database_url
    token_id, plaintext = await tokens.create_token(db, "feed")
    now = datetime.now(UTC)
    # Numbered 1-2, 3-4 and 5-6 in the token's feed; the middle one expires.
    first = await seed_finished_jobs(dsn, token_id, 1, finished_at=now - timedelta(days=1))
    middle = await seed_finished_jobs(dsn, token_id, 1, finished_at=now - timedelta(days=60))
    last = await seed_finished_jobs(dsn, token_id, 1, finished_at=now - timedelta(days=1))
    await stream_entries(dsn, streams, first + middle + last)
    assert _ids_now(api.url, plaintext, "0") == ["1", "2", "3", "4", "5", "6"]

    purged = await Purger(db, streams, replace(settings, retention_seconds=7 * DAY)).run_once()
    assert purged.jobs == 1

    # From the stream (the gap between 2 and 5 is not in Postgres either) ...
    assert _ids_now(api.url, plaintext, "0") == ["1", "2", "5", "6"]
    assert _ids_now(api.url, plaintext, "3") == ["5", "6"]
    # ... and from Postgres alone, with the stream gone.
    await streams.flushdb()
    assert _ids_now(api.url, plaintext, "0") == ["1", "2", "5", "6"]
    assert _ids_now(api.url, plaintext, "2") == ["5", "6"]
