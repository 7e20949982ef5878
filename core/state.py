"""What a running API holds between requests, reached from any endpoint through the request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from starlette.requests import Request

from core.consistency import Reads
from core.db import Databases
from core.limits import RateLimiter, SourceFailures
from core.livestreams import LiveStreams
from core.readiness import ReadinessProbe
from core.sealing import Keyring
from core.settings import Settings
from core.validation import JobValidator
from plugins.tasktypes import TaskType

__all__ = ["AppState", "get_state"]


@dataclass
class AppState:
    settings: Settings
    db: Databases
    queue_redis: aioredis.Redis
    reads: Reads
    rate_limiter: RateLimiter
    source_failures: SourceFailures
    task_types: Mapping[str, TaskType]
    validator: JobValidator
    live_streams: LiveStreams
    readiness: ReadinessProbe
    openapi: dict[str, Any] = field(default_factory=dict)
    admin_token_id: str | None = None
    # The streams Redis (live events); None only in apps built without it.
    events_redis: aioredis.Redis | None = None
    # Seals secret values (core/sealing.py); None: no keyring, the secrets API answers 503.
    keyring: Keyring | None = None


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.homerun
    return state
