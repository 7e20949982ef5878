"""The guard as a process: ``homerun guard`` or ``python -m guard.service``.

It listens on ``HOMERUN_GUARD_SOCKET`` and forwards to ``HOMERUN_GUARD_UPSTREAM``, checking
against the profile of the runners it serves: the same ``HOMERUN_INSTANCE``,
``HOMERUN_WORK_DIR``, ``HOMERUN_SECRETS_DIR`` and egress settings as theirs. SIGTERM and
SIGINT stop it; a connection under way is cut.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from core.settings import Settings
from guard.policy import Profile
from guard.proxy import Guard

__all__ = ["main", "serve"]

log = logging.getLogger(__name__)


async def serve(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT."""
    profile = Profile.from_settings(settings)
    guard = Guard(profile, settings.guard_upstream)
    await guard.serve(settings.guard_socket)
    log.info(
        "guarding %s on %s for instance %s",
        settings.guard_upstream,
        settings.guard_socket,
        profile.instance,
    )
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    try:
        await stopped.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await guard.close()


def main(settings: Settings | None = None) -> None:
    settings = settings or Settings.from_env()
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
