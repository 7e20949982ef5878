"""scripts/ensure-docker.sh on a host where no engine answers: it starts one and makes a Swarm.

The machine's own engine must stay untouched, so the "fresh host" is a network namespace
with a second dockerd of its own (socket, data and exec roots, pid file), the way issue 6's
test cluster runs extra engines: `nsenter --net` (not `ip netns exec`, which remounts /sys).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nsenter") or not shutil.which("ip"),
    reason="needs root, nsenter and ip (iproute2)",
)


@pytest.fixture
def empty_host() -> Iterator[dict[str, str]]:
    name = f"hre2e-ns-{uuid.uuid4().hex[:6]}"
    run_dir = Path("/run") / name
    data_dir = Path("/var/lib") / name
    run_dir.mkdir()
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    sock = f"unix://{run_dir}/docker.sock"
    env = {
        **os.environ,
        "NETNS": f"/var/run/netns/{name}",
        "DOCKER_HOST": sock,
        "HOMERUN_DOCKERD_LOG": str(run_dir / "dockerd.log"),
        "HOMERUN_DOCKERD_ARGS": (
            f"-H {sock} --data-root {data_dir} --exec-root {run_dir}/exec"
            f" --pidfile {run_dir}/docker.pid --bridge none --iptables=false --ip6tables=false"
        ),
    }
    try:
        yield env
    finally:
        pidfile = run_dir / "docker.pid"
        if pidfile.exists():
            pid = int(pidfile.read_text())
            os.kill(pid, signal.SIGTERM)

            def stopped() -> bool:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return True
                return False

            wait_for(stopped, timeout=60, interval=0.2, message="test dockerd to stop")
        subprocess.run(["ip", "netns", "del", name], check=False)
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.rmtree(data_dir, ignore_errors=True)


def _ensure(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nsenter", f"--net={env['NETNS']}", str(ROOT / "scripts" / "ensure-docker.sh")],
        env=env,
        text=True,
        capture_output=True,
        timeout=120,
        check=False,
    )


def _swarm_state(env: dict[str, str]) -> str:
    return subprocess.run(
        ["docker", "info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.Nodes}}"],
        env=env,
        text=True,
        capture_output=True,
        check=True,
    ).stdout.strip()


def test_starts_an_engine_and_a_swarm_then_changes_nothing(empty_host: dict[str, str]) -> None:
    env = empty_host
    assert subprocess.run(["docker", "info"], env=env, capture_output=True).returncode != 0

    first = _ensure(env)

    assert first.returncode == 0, first.stderr
    assert "starting dockerd" in first.stderr
    assert "initialising a single-node Swarm" in first.stderr
    assert _swarm_state(env) == "active 1"
    pid = (Path(env["HOMERUN_DOCKERD_LOG"]).parent / "docker.pid").read_text()

    second = _ensure(env)

    assert second.returncode == 0, second.stderr
    assert second.stderr == ""  # nothing to do: no start, no init
    assert (Path(env["HOMERUN_DOCKERD_LOG"]).parent / "docker.pid").read_text() == pid
    assert _swarm_state(env) == "active 1"
