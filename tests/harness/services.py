"""``homerun api|runner|notifier`` as real subprocesses, configured by ``Settings`` alone.

A child's environment is this process's minus every ``HOMERUN_*`` variable, plus
``Settings.to_env()``: what a developer exported in their shell never reaches a service
under test, and no setting is left behind because a hand-written list forgot it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Literal

import httpx

from core.settings import ENV_PREFIX, Settings
from tests.harness.waiting import free_port, wait_for

Command = Literal["api", "runner", "notifier", "guard"]


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any ``HOMERUN_*`` variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    return env | dict(extra or {})


class ServiceProcess:
    """One ``homerun <command>`` process; output (stdout and stderr) in ``<name>.log``.

    Built stopped; ``start()`` spawns it. ``stop()`` is its graceful shutdown (SIGTERM,
    SIGKILL after ``grace``), ``kill()`` a crash, ``pause()``/``resume()`` a stall.
    """

    def __init__(self, command: Command, settings: Settings, workdir: Path, name: str) -> None:
        self.command = command
        self.settings = settings
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self._secrets = workdir / f"{name}.secrets"
        self._proc: subprocess.Popen[bytes] | None = None
        self._paused = False
        self._terminating = False

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> ServiceProcess:
        if self._proc is not None and self._proc.poll() is None:
            raise RuntimeError(f"homerun {self.name} is already running")
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "homerun.cli", self.command],
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._paused = self._terminating = False
        return self

    def environment(self) -> dict[str, str]:
        """What the child runs with: no inherited ``HOMERUN_*``, every setting written out
        (secrets as files in ``<name>.secrets``)."""
        return clean_env(self.settings.to_env(self._secrets))

    def wait_ready(self, timeout: float = 60.0) -> ServiceProcess:
        """For the API: until it answers ``/healthz``; failing at once if it exited."""

        def ready() -> bool:
            self.check()
            if self.command != "api":
                return True
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200

        wait_for(ready, timeout, interval=0.05, message=f"homerun {self.name} to be ready")
        return self

    def terminate(self) -> None:
        """SIGTERM, once: a second one makes uvicorn skip its graceful shutdown. A paused
        process is resumed first, or it could not act on it."""
        if self.alive and not self._terminating:
            self.resume()
            self.proc.send_signal(signal.SIGTERM)
            self._terminating = True

    def stop(self, grace: float = 30.0) -> int:
        """``terminate()``, then SIGKILL if it has not exited after ``grace`` seconds; the
        exit code."""
        self.terminate()
        try:
            return self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        if self._paused:
            self.proc.send_signal(signal.SIGCONT)
            self._paused = False

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is not None:
            self.stop()

    # --- state and output ----------------------------------------------------------------

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise RuntimeError(f"homerun {self.name} was never started")
        return self._proc

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def url(self) -> str:
        """The API's base URL (its ``host`` and ``port`` settings)."""
        return f"http://{self.settings.host}:{self.settings.port}"

    def check(self) -> None:
        """Fail, with the end of its log, if the process has exited."""
        code = self.proc.poll()
        if code is not None:
            raise AssertionError(f"homerun {self.name} exited with {code}:\n{self.tail()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])


class Services:
    """The service processes of one test (or one bench run), all stopped by ``stop_all``.

    ``workdir`` holds each one's log and secrets; names are made unique, so two APIs in
    one test get ``api.log`` and ``api-2.log``.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[ServiceProcess] = []

    def start(
        self, command: Command, settings: Settings, name: str | None = None
    ) -> ServiceProcess:
        base = name or command
        taken = {p.name for p in self.started}
        unique = next(n for n in (base, *(f"{base}-{i}" for i in range(2, 1000))) if n not in taken)
        process = ServiceProcess(command, settings, self.workdir, unique)
        self.started.append(process)
        return process.start()

    def api(
        self, settings: Settings, name: str | None = None, *, wait: bool = True
    ) -> ServiceProcess:
        """``homerun api`` on a free loopback port; returned once it answers ``/healthz``
        unless ``wait`` is false (then call ``wait_ready``)."""
        on_loopback = replace(settings, host="127.0.0.1", port=free_port())
        process = self.start("api", on_loopback, name)
        return process.wait_ready() if wait else process

    def runner(self, settings: Settings, name: str | None = None) -> ServiceProcess:
        return self.start("runner", settings, name)

    def notifier(self, settings: Settings, name: str | None = None) -> ServiceProcess:
        return self.start("notifier", settings, name)

    def __iter__(self) -> Iterator[ServiceProcess]:
        return iter(self.started)

    def logs(self, lines: int = 100) -> str:
        """The end of every log, for a failure message."""
        return "\n".join(f"--- homerun {p.name} ({p.log_path})\n{p.tail(lines)}" for p in self)

    def stop_all(self) -> None:
        """Stop every process still running: all are told at once, so they shut down side
        by side rather than one after the other (a Docker API guard after the rest)."""
        running = [p for p in self.started if p.alive and p.command != "guard"]
        for process in running:
            process.terminate()
        for process in running:
            process.stop()
        # The runners' own shutdown removes their containers through the guard: it goes last.
        for process in [p for p in self.started if p.alive and p.command == "guard"]:
            process.stop()
