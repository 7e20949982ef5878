"""Free ports and waiting on a condition with a deadline (never a bare ``sleep``)."""

from __future__ import annotations

import asyncio
import inspect
import socket
import time
from collections.abc import Callable
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02, message: str = ""
) -> Any:
    """Poll ``condition`` until it returns a truthy value (and return it); fail after
    ``timeout`` seconds with the last exception it raised as the cause."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # keep polling until the deadline; it becomes the cause
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {message or condition}"
    ) from last_exc


async def eventually(
    condition: Callable[[], Any],
    within: float = 15.0,
    message: str = "",
    interval: float = 0.02,
) -> Any:
    """The async twin of ``wait_for``: polls a plain or async condition without blocking
    the event loop; fails after ``within`` seconds."""
    deadline = time.monotonic() + within
    last_exc: BaseException | None = None
    while True:
        try:
            value = condition()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
        except Exception as exc:  # keep polling until the deadline
            last_exc = exc
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {within}s waiting for {message or condition}"
            ) from last_exc
        await asyncio.sleep(interval)
