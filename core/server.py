"""Run the API: apply migrations (under the advisory lock), then serve with uvicorn.

``homerun api`` calls ``serve()``; so does ``python -m core.server``. Several replicas may
start at once: ``core.migrate`` lets exactly one apply each migration.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg
import uvicorn

from core.app import create_app
from core.migrate import migrate
from core.settings import Settings

__all__ = ["serve"]

log = logging.getLogger(__name__)


# In a Swarm the API may start before Postgres accepts connections; wait that long at most.
DATABASE_WAIT_SECONDS = 60.0


async def _migrate_when_reachable(dsn: str) -> list[str]:
    deadline = time.monotonic() + DATABASE_WAIT_SECONDS
    while True:
        try:
            return await migrate(dsn)
        except (OSError, asyncpg.CannotConnectNowError) as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("database not reachable yet (%s); retrying", exc)
            await asyncio.sleep(1)


def serve(settings: Settings | None = None) -> None:
    settings = settings or Settings.from_env()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    applied = asyncio.run(_migrate_when_reachable(settings.database_url))
    log.info("migrations applied by this process: %s", ", ".join(applied) or "none")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        proxy_headers=True,
        # X-Forwarded-For from these only: the per-source limits count the real client.
        forwarded_allow_ips=settings.forwarded_allow_ips,
        log_level="info",
        # Swarm sends SIGTERM then waits; finish what is in flight within its grace period.
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    serve()
