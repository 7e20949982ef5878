"""How one run in a container ends: one variant per way, and the ``Stop`` that ends it early.

``Engine.run`` returns a ``RunResult``, which is exactly one of

- ``Exited``: the task's process ended by itself (any exit code);
- ``TimedOut``: killed at its time limit;
- ``Stopped``: killed, or never started, because the runner asked (``StopReason``);
- ``StartFailed``: its command could not be started: the task's fault;
- ``EngineFailed``: the engine failed us: not the task's fault.

Every variant carries what the run printed (bounded) and how long it took; only what makes
sense for its way of ending is there besides (an ``Exited`` run's output file, a
``Stopped`` run's reason). ``runners.outcome`` turns a result into what Postgres records.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeAlias

__all__ = [
    "Captured",
    "EngineFailed",
    "Exited",
    "RunResult",
    "StartFailed",
    "Stop",
    "StopReason",
    "Stopped",
    "TimedOut",
    "exit_code",
]

# What a shell answers for a command it cannot run; a task whose argv names no program
# reads the same in its results.
START_FAILED_EXIT_CODE = 127


class StopReason(StrEnum):
    CANCELLED = "cancelled"  # the job was cancelled
    LOST = "lost"  # the attempt's lease is gone: someone else owns the task now
    SHUTDOWN = "shutdown"  # the runner is stopping and its grace period ran out


class Stop:
    """Asks a running attempt to kill its container; the first reason given wins."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.reason: StopReason | None = None

    def request(self, reason: StopReason) -> None:
        if self.reason is None:
            self.reason = reason
            self._event.set()

    async def wait(self) -> StopReason:
        await self._event.wait()
        assert self.reason is not None
        return self.reason


@dataclass(frozen=True, kw_only=True)
class Captured:
    """What every ending has: the bounded output (empty when no container ran), the time."""

    stdout: str = ""
    stdout_truncated: bool = False
    stderr: str = ""
    stderr_truncated: bool = False
    seconds: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Exited(Captured):
    """The process ended by itself with ``exit_code``.

    ``oom_killed``: the kernel killed it for using more than its memory limit.
    ``output_file``: the bytes of ``/homerun/output.json``, None when it is empty, absent or
    over its limit; ``output_file_size`` is its size either way.
    ``artifacts_error``: what it left under /homerun/artifacts is over the bounds (found
    while it ran, and it was killed, or after it exited): the attempt fails as ``artifacts``.
    """

    exit_code: int
    oom_killed: bool = False
    output_file: bytes | None = None
    output_file_size: int = 0
    artifacts_error: str | None = None


@dataclass(frozen=True, kw_only=True)
class TimedOut(Captured):
    """Killed at the time limit; ``exit_code`` is what the engine reported after the kill."""

    exit_code: int


@dataclass(frozen=True, kw_only=True)
class Stopped(Captured):
    """Killed (or never started) because ``Stop`` was requested for ``reason``.

    ``exit_code`` is None when no container ran or the engine never reported its exit.
    """

    reason: StopReason
    exit_code: int | None = None


@dataclass(frozen=True, kw_only=True)
class StartFailed(Captured):
    """The command could not be started (no such executable): the task's fault."""

    error: str
    exit_code: int = START_FAILED_EXIT_CODE


@dataclass(frozen=True, kw_only=True)
class EngineFailed(Captured):
    """The engine failed us (image missing or not pullable, daemon error): not the task's
    fault. The run has no exit code: either no process ran, or its end went unreported."""

    error: str


RunResult: TypeAlias = Exited | TimedOut | Stopped | StartFailed | EngineFailed


def exit_code(result: RunResult) -> int | None:
    """The exit code the result records, if it has one."""
    return None if isinstance(result, EngineFailed) else result.exit_code
