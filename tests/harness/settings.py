"""Settings for a test's homerun: its private stores, the rate limit out of the way."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from core.settings import Settings


def settings_for(
    database_url: str, queue_redis_url: str, events_redis_url: str, **overrides: Any
) -> Settings:
    base = Settings(
        database_url=database_url,
        queue_redis_url=queue_redis_url,
        events_redis_url=events_redis_url,
        rate_limit_per_second=1000.0,
        rate_limit_burst=1000,
    )
    return replace(base, **overrides)
