#!/opt/homerun/bin/python
"""Docker HEALTHCHECK of the homerun image: exit 0 when healthy, 1 when not.

The same image runs three services; PID 1's command line (tini -- homerun-entrypoint <role>)
says which one this container is.
  api       GET /healthz on HOMERUN_PORT answers 200.
  guard     GET /_ping through its own socket (HOMERUN_GUARD_SOCKET) answers 200: the
            socket the runners use is there and reaches the engine.
  runner,   the homerun process is alive and not a zombie: both services recover from lost
  notifier  dependencies on their own, so a health check that probed Redis or Postgres would
            only make Swarm restart them in a loop while a dependency is down.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.request
from pathlib import Path

ROLES = ("api", "runner", "notifier", "guard")


def _cmdline(pid: str) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")


def _role() -> str | None:
    for arg in _cmdline("1"):
        if arg in ROLES:
            return arg
    return None


def _process_alive(role: str) -> bool:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or entry.name == "1":
            continue
        try:
            args = _cmdline(entry.name)
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # exited while we looked
        if role in args and any("homerun" in a for a in args) and state != "Z":
            return True
    return False


def _guard_answers() -> bool:
    path = os.environ.get("HOMERUN_GUARD_SOCKET", "/run/homerun-guard/docker.sock")
    try:
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(2)
            conn.connect(path)
            conn.sendall(b"GET /_ping HTTP/1.1\r\nHost: guard\r\n\r\n")
            answer = conn.recv(64)
    except OSError as exc:
        print(f"guard not healthy: {exc}", file=sys.stderr)
        return False
    return answer.startswith(b"HTTP/1.1 200")


def main() -> int:
    role = _role()
    if role == "api":
        port = os.environ.get("HOMERUN_PORT", "8000")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                return 0 if resp.status == 200 else 1
        except OSError as exc:
            print(f"api not healthy: {exc}", file=sys.stderr)
            return 1
    if role == "guard":
        return 0 if _guard_answers() else 1
    if role is not None:
        return 0 if _process_alive(role) else 1
    return 0  # a one-off command (migrate, token ...): nothing to watch


if __name__ == "__main__":
    sys.exit(main())
