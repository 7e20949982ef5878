"""A real registry for tests: Debian's ``docker-registry`` (the CNCF distribution registry)
as a plain process on a free loopback port, which every engine trusts without TLS.

Its access log stays on: it is how tests count what was pulled. Freezing it with SIGSTOP
makes a registry that accepts connections and never answers.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port, wait_for


@dataclass
class Registry:
    addr: str
    log: Path
    proc: subprocess.Popen[bytes]
    debug_addr: str | None = None  # the debug listener (its /debug/health), when asked for

    def requests_for(self, path: str, since: int = 0) -> list[str]:
        """Access-log lines (after byte ``since``) of requests for exactly ``path``."""
        with self.log.open("rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace")
        pattern = re.compile(rf'"(GET|HEAD) {re.escape(path)} HTTP/')
        return [line for line in text.splitlines() if pattern.search(line)]

    def log_size(self) -> int:
        return self.log.stat().st_size

    def freeze(self) -> None:
        """Stop answering: the kernel still accepts connections, nothing replies."""
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def repositories(self) -> list[str]:
        with urllib.request.urlopen(f"http://{self.addr}/v2/_catalog", timeout=5) as response:
            return list(json.load(response)["repositories"])


@contextmanager
def running_registry(
    root: Path, htpasswd: str | None = None, debug_addr: str | None = None
) -> Iterator[Registry]:
    """A registry storing under ``root`` (created), stopped on exit. With ``htpasswd`` (a
    file's content, as the stack's ``registry-htpasswd`` secret holds it) every request
    needs a password, configured the way the stack's ``REGISTRY_AUTH*`` variables do;
    ``debug_addr`` turns on the debug listener the stack's health check asks."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail("docker-registry is missing: run scripts/bootstrap.sh")
    addr = f"127.0.0.1:{free_port()}"
    (root / "storage").mkdir(parents=True)
    config = root / "config.yml"
    text = (
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'storage'}\n"
        f"http:\n  addr: {addr}\n"
    )
    if debug_addr:
        text += f"  debug:\n    addr: {debug_addr}\n"
    if htpasswd is not None:
        (root / "htpasswd").write_text(htpasswd)
        text += f"auth:\n  htpasswd:\n    realm: test\n    path: {root / 'htpasswd'}\n"
    config.write_text(text)
    log = root / "registry.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    reg = Registry(addr, log, proc, debug_addr)
    try:
        expect = 200 if htpasswd is None else 401
        wait_for(lambda: _answers(addr, expect), 20, message=f"the registry on {addr}")
        yield reg
    finally:
        reg.thaw()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _answers(addr: str, expect: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{addr}/v2/", timeout=1) as response:
            return bool(response.status == expect)
    except urllib.error.HTTPError as exc:
        return exc.code == expect
