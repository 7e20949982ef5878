"""The runner as a process: ``homerun runner`` or ``python -m runners.service``.

SIGTERM (what Swarm sends on a rolling update) and SIGINT stop claiming; running attempts
get ``shutdown_grace_seconds`` to finish, then are killed and handed back for a retry.
"""

from __future__ import annotations

import asyncio
import logging
import signal

import pluggy

from core.settings import Settings
from plugins.manager import make_plugin_manager
from runners.worker import Runner

__all__ = ["main", "serve"]


async def serve(settings: Settings, pm: pluggy.PluginManager) -> None:
    """Run a runner until SIGTERM or SIGINT."""
    runner = Runner(settings, pm)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, runner.stop)
    try:
        await runner.run()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def main(settings: Settings | None = None, pm: pluggy.PluginManager | None = None) -> None:
    """Blocking entry point; ``pm`` lets a test run the runner with throwaway plugins."""
    settings = settings or Settings.from_env()
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    if pm is None:
        pm = make_plugin_manager(disabled=settings.disabled_plugins)
    asyncio.run(serve(settings, pm))


if __name__ == "__main__":
    main()
