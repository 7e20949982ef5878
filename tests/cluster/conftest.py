"""A three-node Docker Swarm on this machine, brought up once per test session.

``scripts/cluster.sh up 3`` (the same script as ``make cluster``) starts three extra Docker
engines, each in a network namespace of its own, joined into a Swarm of their own: the host's
engine and its Swarm are not touched. At the end ``scripts/cluster.sh down`` removes
everything, run twice (the second must be a no-op), and the session checks that the host is
left as it was: no namespace, link, iptables rule, mount, socket, cgroup or process of the
cluster remains, and the host's own Swarm is unchanged.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "cluster.sh"
# Its own name and subnet, so a `make cluster` someone left running is never in the way.
NAME = "hrtest"
SUBNET = "10.213.1"
NODES = 3
STACK = "hrclu"  # the homerun stack test_stack.py deploys on the cluster


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.cluster)


@dataclass(frozen=True)
class Node:
    index: int
    host: str  # the engine's socket, unix://...
    ip: str  # its address on the cluster's bridge
    id: str  # its Swarm node id
    labels: dict[str, str]

    @property
    def hostname(self) -> str:
        return f"{NAME}-node{self.index}"

    def client(self, timeout: int = 120) -> closing[docker.DockerClient]:
        """``with node.client() as c:`` a client of this node's engine, closed afterwards."""
        return closing(docker.DockerClient(base_url=self.host, timeout=timeout))


@dataclass(frozen=True)
class Cluster:
    name: str
    nodes: tuple[Node, ...]
    # The nodes' Docker Hub mirror (they cannot reach the Hub): where they pull from (the
    # bridge address) and where the host's engine pushes to (loopback).
    registry: str
    registry_push: str
    env: dict[str, str]  # the environment scripts/cluster.sh is run with

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    def node(self, index: int) -> Node:
        return self.nodes[index - 1]

    def node_of(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.id == node_id)

    def script(self, *args: str, timeout: float = 600) -> str:
        return run_script(self.env, *args, timeout=timeout)

    def kill(self, index: int) -> None:
        """Node loss: SIGKILL the node's engine, containerd, shims and every container."""
        self.script("kill", str(index))

    def start(self, index: int) -> None:
        self.script("start", str(index))

    def node_state(self, index: int) -> str:
        with self.manager.client() as client:
            return str(client.nodes.get(self.node(index).id).attrs["Status"]["State"])

    def wait_node(self, index: int, state: str, timeout: float = 90) -> None:
        wait_for(
            lambda: self.node_state(index) == state,
            timeout=timeout,
            interval=0.5,
            message=f"node{index} to be {state}",
        )


def run_script(env: dict[str, str], *args: str, timeout: float = 600) -> str:
    proc = subprocess.run(
        [str(SCRIPT), *args],
        cwd=ROOT,
        env=env,
        text=True,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"scripts/cluster.sh {' '.join(args)} failed ({proc.returncode}):\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
    return proc.stdout


def read_state(path: Path) -> dict[str, str]:
    state: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        state[key] = " ".join(shlex.split(value))
    return state


def host_leftovers(name: str) -> list[str]:
    """Everything of cluster ``name`` that is still on the host; empty once it is down."""
    found: list[str] = []

    def out(*cmd: str) -> str:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout

    found += [f"netns {n}" for n in out("ip", "netns", "list").split() if n.startswith(name)]
    found += [
        f"link {line.split(':')[1].strip()}"
        for line in out("ip", "-o", "link", "show").splitlines()
        if line.split(":")[1].strip().split("@")[0].startswith(f"{name}-")
    ]
    found += [
        f"iptables {r}"
        for r in out("iptables", "-w", "-S").splitlines()
        if f"homerun-cluster-{name}" in r
    ]
    found += [
        f"mount {line.split()[4]}"
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if f"/homerun-cluster/{name}" in line or f"/cluster/{name}" in line
    ]
    found += [f"socket {p}" for p in Path("/var/run").glob(f"docker-{name}-*.sock")]
    found += [f"cgroup {p}" for p in Path("/sys/fs/cgroup").glob(f"*/homerun-{name}-*")]
    found += [
        f"dir {p}"
        for p in (
            ROOT / ".homerun" / "cluster" / name,
            Path("/run/homerun-cluster") / name,
            # what the stack deployed on it kept on the host: secrets, runners' work files
            ROOT / ".homerun" / "stacks" / STACK,
            Path("/var/lib/homerun/work") / STACK,
        )
        if p.exists()
    ]
    found += [
        f"process {line}"
        for line in out("ps", "-eo", "pid,args").splitlines()
        if (f"/{name}/" in line and ("dockerd" in line or "docker-registry" in line))
        # the forward to the stack's registry on node1
        or ("socat" in line and f"TCP:{SUBNET}." in line)
    ]
    return found


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    env = {**os.environ, "HOMERUN_CLUSTER_NAME": NAME, "HOMERUN_CLUSTER_SUBNET": SUBNET}
    host = docker.from_env(timeout=60)
    host_swarm = host.info()["Swarm"]
    # What an interrupted earlier session left behind goes first.
    run_script(env, "down")
    try:
        run_script(env, "up", str(NODES))
        state_file = ROOT / ".homerun" / "cluster" / NAME / "state.env"
        first = state_file.read_text()
        run_script(env, "up", str(NODES))  # idempotent: the same nodes, nothing new
        assert state_file.read_text() == first
        state = read_state(state_file)
        nodes = tuple(
            Node(
                index=i,
                host=state[f"NODE{i}_HOST"],
                ip=state[f"NODE{i}_IP"],
                id=state[f"NODE{i}_ID"],
                labels=dict(kv.split("=", 1) for kv in state[f"NODE{i}_LABELS"].split()),
            )
            for i in range(1, int(state["CLUSTER_NODES"]) + 1)
        )
        yield Cluster(
            name=NAME,
            nodes=nodes,
            registry=state["CLUSTER_REGISTRY"],
            registry_push=state["CLUSTER_REGISTRY_PUSH"],
            env=env,
        )
    finally:
        run_script(env, "down")
        run_script(env, "down")  # idempotent: nothing left to do, no error
        left = host_leftovers(NAME)
        after = host.info()["Swarm"]
        host.close()
        assert not left, f"cluster.sh down left on the host: {left}"
        # The host's own single-node Swarm is exactly as it was.
        assert (after["NodeID"], after["NodeAddr"], after["Nodes"], after["Managers"]) == (
            host_swarm["NodeID"],
            host_swarm["NodeAddr"],
            host_swarm["Nodes"],
            host_swarm["Managers"],
        )
