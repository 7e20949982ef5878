"""`make up` a second time on a deployed stack changes nothing, and neither does `make images`."""

from __future__ import annotations

import re
from typing import Any

import docker

from stack.topology import SERVICE_KEYS
from tests.e2e.conftest import NAMESPACE, Stack, run_script


def _snapshot(client: docker.DockerClient, stack: str) -> dict[str, Any]:
    services = client.services.list(filters={"label": f"{NAMESPACE}={stack}"})
    return {
        "specs": {s.name: s.attrs["Spec"] for s in services},
        "containers": sorted(
            c.id for c in client.containers.list(filters={"label": f"{NAMESPACE}={stack}"})
        ),
        "secrets": sorted(
            s.id for s in client.secrets.list(filters={"label": f"{NAMESPACE}={stack}"})
        ),
        "configs": sorted(
            c.id for c in client.configs.list(filters={"label": f"{NAMESPACE}={stack}"})
        ),
        "networks": sorted(
            n.id for n in client.networks.list(filters={"label": f"{NAMESPACE}={stack}"})
        ),
    }


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two specs differ, as paths: a failure says what changed, not just that."""
    if isinstance(a, dict) and isinstance(b, dict):
        found: list[str] = []
        for key in sorted(set(a) | set(b)):
            found += _differences(a.get(key), b.get(key), f"{path}/{key}")
        return found
    return [] if a == b else [f"{path}: {a!r} -> {b!r}"[:400]]


def test_up_again_changes_nothing(stack: Stack, docker_client: docker.DockerClient) -> None:
    before = _snapshot(docker_client, stack.name)
    # The session's stack: the default services, a runner group and the egress proxy.
    keys = (*SERVICE_KEYS, "runner-big", "egress-proxy")
    assert sorted(before["specs"]) == sorted(f"{stack.name}_{k}" for k in keys)

    again = run_script("up.sh", stack.env, 900)

    assert again.returncode == 0, again.stderr[-4000:]
    after = _snapshot(docker_client, stack.name)
    assert _differences(before["specs"], after["specs"]) == []
    assert after == before
    # The sample job is found again by its Idempotency-Key, not submitted twice.
    assert "exists" in again.stderr, again.stderr[-2000:]


def test_images_again_is_all_cache_hits(stack: Stack) -> None:
    again = run_script("images.sh", stack.env, 600)

    assert again.returncode == 0, again.stderr[-4000:]
    built = re.findall(r"\[images\] (\S+) \(\d+ s, (\d+)/(\d+) steps cached\)", again.stderr)
    names = {name.split(":")[0] for name, _, _ in built}
    assert names >= {"homerun/app", "homerun/postgres", "homerun/redis", "homerun/task-shell"}
    assert all(hit == total for _, hit, total in built), again.stderr
    assert "wheel updated" not in again.stderr
