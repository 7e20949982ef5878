"""Parity: the compose file `docker stack deploy` gets and the resources the Pulumi program
creates describe the same Swarm objects.

Each rendering is read back on its own terms (tests/unit/stack/forms.py) into one neutral
form, and the two forms must be equal: services, images, commands, environments, networks and
aliases, secrets (with contents), configs (with contents), mounts, limits, reservations,
replicas, ports, health checks, restart/update/rollback policies, placement and labels.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml

from stack import compose
from stack.config import SECRET_CONFIG_KEYS
from stack.model import Topology
from stack.topology import IMAGE_NAMES, StackConfig
from tests.unit.stack.forms import from_compose, from_pulumi
from tests.unit.stack.harness import SECRET_VALUES, local_image_id, registry_digest, run_program

# Each secret's file holding the value Pulumi config has for it.
SECRET_FILES = {
    **{key: SECRET_VALUES[config_key] for key, config_key in SECRET_CONFIG_KEYS.items()},
    # The key the secrets' names are derived with (stack.secretfiles), as Pulumi has it.
    "naming-key": SECRET_VALUES["secretNamingKey"],
}

# (compose CLI arguments, the same deployment as Pulumi config)
CASES: dict[str, tuple[list[str], dict[str, Any]]] = {
    "defaults": ([], {}),
    "no-ipvs-host": (
        [
            "--stack",
            "hrpar",
            "--endpoint-mode",
            "dnsrr",
            "--publish-mode",
            "host",
            "--port",
            "18000",
            "--placement-labels",
            "--encrypt-networks",
            "--label-prefix",
            "acme",
            "--docker-socket",
            "/run/docker.sock",
        ],
        {
            "stackName": "hrpar",
            "endpointMode": "dnsrr",
            "publishMode": "host",
            "apiPort": 18000,
            "placementLabels": True,
            "encryptNetworks": True,
            "labelPrefix": "acme",
            "dockerSocket": "/run/docker.sock",
        },
    ),
    "scaled-registry": (
        [
            "--registry",
            "reg.example:5000",
            "--tag",
            "1.2.3",
            "--api-replicas",
            "4",
            "--runner-replicas",
            "3",
            "--notifier-replicas",
            "2",
            "--runner-concurrency",
            "7",
            "--max-running-per-token",
            "5",
            "--retention-seconds",
            "86400",
            "--retention-poll-seconds",
            "7",
            "--max-map-items",
            "500",
            "--artifacts-max-files",
            "20",
            "--artifacts-max-bytes",
            "1048576",
            "--allowed-images",
            "alpine:3,busybox:1",
            "--resources",
            "api=2,1024",
            "--resources",
            "postgres-primary=2,4096,0.5,1024",
        ],
        {
            "registry": "reg.example:5000",
            "tag": "1.2.3",
            "apiReplicas": 4,
            "runnerReplicas": 3,
            "notifierReplicas": 2,
            "runnerConcurrency": 7,
            "maxRunningPerToken": 5,
            "retentionSeconds": 86400,
            "retentionPollSeconds": 7,
            "maxMapItems": 500,
            "artifactsMaxFiles": 20,
            "artifactsMaxBytes": 1048576,
            "allowedImages": ["alpine:3", "busybox:1"],
            "resources": ["api=2,1024", "postgres-primary=2,4096,0.5,1024"],
        },
    ),
    "own-registry-host": (
        [
            "--stack",
            "hrreg",
            "--endpoint-mode",
            "dnsrr",
            "--publish-mode",
            "host",
            "--run-registry",
            "--registry-port",
            "5123",
            "--registry-image",
            "mirror.example/registry:2.8",
            "--registry-proxy-image",
            "mirror.example/haproxy:2.8",
            "--placement-labels",
        ],
        {
            "stackName": "hrreg",
            "endpointMode": "dnsrr",
            "publishMode": "host",
            "runRegistry": True,
            "registryPort": 5123,
            "registryImage": "mirror.example/registry:2.8",
            "registryProxyImage": "mirror.example/haproxy:2.8",
            "placementLabels": True,
        },
    ),
    "own-registry-mesh": (["--run-registry"], {"runRegistry": True}),
    "runner-groups": (
        [
            "--runner-group",
            "big:replicas=2,concurrency=3,labels=bigdisk+ssd,constraint=node.labels.disk==big",
            "--runner-group",
            "gpu:labels=gpu",
            "--placement-labels",
        ],
        {
            "runnerGroups": [
                "big:replicas=2,concurrency=3,labels=bigdisk+ssd,constraint=node.labels.disk==big",
                "gpu:labels=gpu",
            ],
            "placementLabels": True,
        },
    ),
    "egress": (
        [
            "--egress",
            "--egress-allow",
            "api.example.com,*.cdn.example:8443",
            "--task-runtime",
            "auto",
            "--no-edge-port-check",
            "--egress-denied-networks",
            "198.51.100.7/32",
            "--encrypt-networks",
        ],
        {
            "egress": True,
            "egressAllow": ["api.example.com", "*.cdn.example:8443"],
            "egressDeniedNetworks": ["198.51.100.7/32"],
            "taskRuntime": "auto",
            "edgeChecksPublishedPort": False,
            "encryptNetworks": True,
        },
    ),
}


# --------------------------------------------------------------------------- tests


def _engine_pins(topology: Topology, config: StackConfig) -> dict[str, str]:
    """What compose.pin_images would find on an engine holding what the mocks answer for:
    the local images' IDs, and the digests of the images the registry answers for (the
    stack's own pushes are pinned at deploy time, see _unpinned)."""
    own = {config.image(name) for name in IMAGE_NAMES}
    pins: dict[str, str] = {}
    for image in {svc.image for svc in topology.services}:
        if not config.image_registry:
            if image in own:
                pins[image] = local_image_id(image)
        elif config.registry or image not in own:
            pins[image] = f"{image}@{registry_digest(image)}"
    return pins


def render_compose(tmp_path: Path, args: list[str]) -> dict[str, Any]:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    for key, value in SECRET_FILES.items():
        # A final newline, as an editor leaves it: both renderings store the value without.
        (secrets_dir / key).write_text(value + "\n")
    out = tmp_path / "compose.yml"
    with mock.patch("stack.compose.pin_images", _engine_pins):
        rc = compose.main(
            [
                *args,
                "--pin-images",
                "--secrets-dir",
                str(secrets_dir),
                "--config-dir",
                str(tmp_path / "configs"),
                "-o",
                str(out),
            ]
        )
    assert rc == 0
    document: dict[str, Any] = yaml.safe_load(out.read_text())
    return document


STACK_IMAGE = "com.docker.stack.image"
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def _unpinned(form: dict[str, Any], pinned: bool) -> dict[str, Any]:
    """The Pulumi form with each image's digest removed. With its own registry the program
    pins every homerun image to the digest it pushed; the compose file names the same image
    by tag only, because `docker stack deploy --resolve-image always` (scripts/up.sh) pins it
    to the registry's digest itself, at deploy time. Same services once deployed, so the
    comparison is of the names without the digest."""
    services = form["services"]
    digests = {name: _DIGEST.search(svc["image"]) for name, svc in services.items()}
    # Every registry image is pinned (stack.components.pins), the pushed ones included.
    assert all(d for n, d in digests.items() if "/" in services[n]["image"].split("@")[0]) or not (
        pinned
    )
    own = (
        {name for name, svc in services.items() if "/homerun/" in svc["image"]} if pinned else set()
    )
    return {
        **form,
        "services": {
            name: {
                **svc,
                "image": _DIGEST.sub("", svc["image"]),
                "labels": {
                    **svc["labels"],
                    STACK_IMAGE: _DIGEST.sub("", svc["labels"][STACK_IMAGE]),
                },
            }
            if name in own
            else svc
            for name, svc in services.items()
        },
    }


def _both(tmp_path: Path, case: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    args, config = CASES[case]
    doc = render_compose(tmp_path, args)
    stack = str(config.get("stackName", "homerun"))
    pulumied = _unpinned(from_pulumi(run_program(config)), bool(config.get("runRegistry")))
    return doc, from_compose(doc, stack), pulumied


@pytest.mark.parametrize("case", sorted(CASES))
def test_compose_and_pulumi_describe_the_same_stack(tmp_path, case):
    _, composed, pulumied = _both(tmp_path, case)
    assert sorted(composed["services"]) == sorted(pulumied["services"])
    for name in composed["services"]:
        assert composed["services"][name] == pulumied["services"][name], name
    for section in ("networks", "secrets", "configs", "volumes"):
        assert composed[section] == pulumied[section], section


def test_the_cases_really_differ():
    # Guards the parametrisation: each case must change what is compared.
    forms = {repr(from_pulumi(run_program(config))) for _, config in CASES.values()}
    assert len(forms) == len(CASES)


@pytest.mark.parametrize(
    ("path", "mutation"),
    [
        (("services", "api", "deploy", "resources", "limits"), "delete"),
        (("services", "runner", "deploy", "replicas"), 5),
        (("services", "postgres-replica", "volumes"), "delete"),
        (("services", "redis-queue", "networks"), {"public": None}),
        (("services", "api", "secrets"), "delete"),
        (("services", "edge", "image"), "homerun/other:0.1.0"),
        (("services", "notifier", "healthcheck", "retries"), 1),
    ],
)
def test_the_comparison_catches_a_difference(tmp_path, path, mutation):
    doc, _, pulumied = _both(tmp_path, "defaults")
    broken = copy.deepcopy(doc)
    parent = broken
    for key in path[:-1]:
        parent = parent[key]
    if mutation == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = mutation
    assert from_compose(broken, "homerun")["services"] != pulumied["services"]
