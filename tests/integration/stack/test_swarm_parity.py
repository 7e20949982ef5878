"""The compose file, deployed by Docker's own `docker stack deploy` on the real Swarm, creates
exactly the service specs the Pulumi program (under mocks) would create.

This closes the loop of the parity test: not only do the two renderings agree on paper, the
objects Docker makes from one are the objects the other describes. The stack is deployed
under a unique name, inspected at once (no task needs to run: placement labels keep the data
services pending) and removed, with its volumes, in a finally.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.conftest import free_port, wait_for
from tests.unit.stack.forms import NAMESPACE, from_pulumi
from tests.unit.stack.harness import SECRET_VALUES, run_program

pytestmark = pytest.mark.integration

NS = 1e9
# A second runner service (runner-big), its labels and placement, deployed on the real Swarm.
RUNNER_GROUP = "big:replicas=1,concurrency=2,labels=bigdisk,constraint=node.labels.disk==big"


def _swarm_active(client: docker.DockerClient) -> bool:
    return bool(client.info().get("Swarm", {}).get("ControlAvailable"))


@pytest.fixture
def client() -> Iterator[docker.DockerClient]:
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI")
    c = docker.from_env(timeout=60)
    if not _swarm_active(c):
        pytest.skip("this engine is not a Swarm manager")
    yield c
    c.close()


def _deploy(stack: str, args: list[str], workdir: Path) -> None:
    secrets_dir = workdir / "secrets"
    secrets_dir.mkdir()
    # Every secret with the value the Pulumi side has in its config: the same names.
    from stack.config import SECRET_CONFIG_KEYS

    values = {key: SECRET_VALUES[config_key] for key, config_key in SECRET_CONFIG_KEYS.items()}
    values["naming-key"] = SECRET_VALUES["secretNamingKey"]
    for key, value in values.items():
        (secrets_dir / key).write_text(value)
    from stack import compose

    out = workdir / "compose.yml"
    assert (
        compose.main(
            [
                *args,
                "--stack",
                stack,
                "--secrets-dir",
                str(secrets_dir),
                "--config-dir",
                str(workdir / "configs"),
                "--pin-images",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    subprocess.run(
        ["docker", "stack", "deploy", "--resolve-image", "never", "-c", str(out), stack],
        check=True,
        capture_output=True,
        text=True,
    )


def _remove(client: docker.DockerClient, stack: str) -> None:
    subprocess.run(["docker", "stack", "rm", stack], check=False, capture_output=True)
    label = f"{NAMESPACE}={stack}"

    def gone() -> bool:
        return not client.containers.list(all=True, filters={"label": label}) and not [
            n for n in client.networks.list(filters={"label": label})
        ]

    wait_for(gone, timeout=90, interval=0.5, message=f"stack {stack} to be removed")
    for volume in client.volumes.list(filters={"name": f"{stack}_"}):
        if volume.name.startswith(f"{stack}_"):
            volume.remove(force=True)


def _seconds(ns: int | None) -> float | None:
    return None if ns is None else round(ns / NS, 6)


def _update(u: dict[str, Any]) -> tuple[Any, ...]:
    return (
        u.get("Parallelism"),
        _seconds(u.get("Delay", 0)),
        u.get("Order"),
        u.get("FailureAction"),
        _seconds(u.get("Monitor", 0)),
        float(u.get("MaxFailureRatio", 0)),
    )


def from_swarm(client: docker.DockerClient, stack: str) -> dict[str, Any]:
    label = {"label": f"{NAMESPACE}={stack}"}
    # `docker stack deploy` puts a service that names no network (docker-guard) on a
    # `<stack>_default` overlay of its own; Pulumi attaches none. Neither is a network of
    # the topology, so the comparison leaves it out.
    default = f"{stack}_default"
    networks = {n.id: n.attrs for n in client.networks.list(filters=label) if n.name != default}
    configs = client.configs.list(filters=label)
    out: dict[str, Any] = {
        "networks": {
            n["Name"]: (
                n["Driver"],
                n["Attachable"],
                n["Internal"],
                "encrypted" in (n.get("Options") or {}),
                tuple(sorted((k, v) for k, v in (n.get("Labels") or {}).items() if k != NAMESPACE)),
            )
            for n in networks.values()
        },
        # Swarm never hands a secret's data back: names only.
        "secrets": sorted(s.name for s in client.secrets.list(filters=label)),
        "configs": {c.name: base64.b64decode(c.attrs["Spec"]["Data"]).decode() for c in configs},
        "services": {},
    }
    volumes: set[str] = set()
    for service in client.services.list(filters=label):
        spec = service.attrs["Spec"]
        task = spec["TaskTemplate"]
        container = task["ContainerSpec"]
        resources = task.get("Resources", {})
        limits, reserve = resources.get("Limits", {}), resources.get("Reservations", {})
        health = container.get("Healthcheck", {})
        restart = task.get("RestartPolicy", {})
        mode = spec.get("Mode", {})
        mounts = container.get("Mounts", [])
        volumes |= {m["Source"] for m in mounts if m["Type"] == "volume"}
        labels = dict(spec.get("Labels", {}))
        out["services"][spec["Name"]] = {
            "image": container["Image"],
            "args": tuple(container.get("Args", ())),
            "env": dict(e.split("=", 1) for e in container.get("Env", ())),
            "user": container.get("User"),
            "networks": sorted(
                (networks[n["Target"]]["Name"], tuple(sorted(set(n.get("Aliases", ())))))
                for n in task.get("Networks", ())
                if n["Target"] in networks
            ),
            "secrets": sorted(
                (
                    s["SecretName"],
                    s["File"]["Name"],
                    s["File"]["Mode"],
                    s["File"]["UID"],
                    s["File"]["GID"],
                )
                for s in container.get("Secrets", ())
            ),
            "configs": sorted(
                (c["ConfigName"], c["File"]["Name"], c["File"]["Mode"])
                for c in container.get("Configs", ())
            ),
            "mounts": sorted(
                (m["Type"], m["Source"], m["Target"], m.get("ReadOnly", False)) for m in mounts
            ),
            "limits": (limits.get("NanoCPUs"), limits.get("MemoryBytes")),
            "reservations": (reserve.get("NanoCPUs"), reserve.get("MemoryBytes")),
            "mode": ("global", None)
            if "Global" in mode
            else ("replicated", mode["Replicated"].get("Replicas", 0)),
            "endpoint_mode": spec.get("EndpointSpec", {}).get("Mode", "vip"),
            "ports": sorted(
                (
                    p["TargetPort"],
                    p.get("PublishedPort"),
                    p.get("PublishMode", "ingress"),
                    p.get("Protocol", "tcp"),
                )
                for p in spec.get("EndpointSpec", {}).get("Ports", ())
            ),
            "healthcheck": (
                tuple(health.get("Test", ())),
                _seconds(health.get("Interval")),
                _seconds(health.get("Timeout")),
                health.get("Retries"),
                _seconds(health.get("StartPeriod")),
            ),
            "restart": (
                restart.get("Condition"),
                _seconds(restart.get("Delay")),
                restart.get("MaxAttempts", 0),
                _seconds(restart.get("Window")),
            ),
            "update": _update(spec.get("UpdateConfig", {})),
            "rollback": _update(spec.get("RollbackConfig", {})),
            "constraints": tuple(task.get("Placement", {}).get("Constraints", ())),
            "labels": labels,
            "stop_grace": _seconds(container.get("StopGracePeriod")),
        }
    out["volumes"] = sorted(volumes)
    return out


def test_docker_stack_deploy_creates_what_pulumi_would(client, tmp_path):
    stack = f"hrtest-pulumi-{uuid.uuid4().hex[:8]}"
    port = free_port()
    args = [
        "--endpoint-mode",
        "dnsrr",
        "--publish-mode",
        "host",
        "--port",
        str(port),
        "--placement-labels",
        "--api-replicas",
        "1",
        "--notifier-replicas",
        "0",
        "--runner-group",
        RUNNER_GROUP,
        # The egress part too: its networks (one internal, attachable), config and proxy.
        "--egress",
        "--egress-allow",
        "api.example.com,*.cdn.example:8443",
    ]
    config = {
        "stackName": stack,
        "endpointMode": "dnsrr",
        "publishMode": "host",
        "apiPort": port,
        "placementLabels": True,
        "apiReplicas": 1,
        "notifierReplicas": 0,
        "runnerGroups": [RUNNER_GROUP],
        "egress": True,
        "egressAllow": ["api.example.com", "*.cdn.example:8443"],
    }
    try:
        _deploy(stack, args, tmp_path)
        real = from_swarm(client, stack)
    finally:
        _remove(client, stack)
    pulumied = from_pulumi(run_program(config))
    # The mocks answer "sha256:local-<image>" for a local image's ID; this engine, the real one.
    for svc in pulumied["services"].values():
        for where in (svc, svc["labels"]):
            field = "image" if where is svc else "com.docker.stack.image"
            if where[field].startswith("sha256:local-"):
                where[field] = client.images.get(where[field].removeprefix("sha256:local-")).id

    assert sorted(real["services"]) == sorted(pulumied["services"])
    for name, spec in real["services"].items():
        assert spec == pulumied["services"][name], name
    assert real["networks"] == pulumied["networks"]
    assert real["configs"] == pulumied["configs"]
    assert real["secrets"] == sorted(pulumied["secrets"])
    assert real["volumes"] == pulumied["volumes"]
