"""Every rendered resource, checked against what the real provider does with it.

The mocks echo inputs back, so they cannot show what pulumi-docker (bridged from
kreuzwerker/terraform-provider-docker) reads back and diffs. These checks are written from the
provider's schema: pulumi/pulumi-docker, provider/cmd/pulumi-resource-docker/schema.json at
237b7899bb513613a7645e74d6981c12d054dcc7, of which ``provider_schema.json`` beside this file is
the extract they need (each resource's inputs and the types they refer to: which properties are
durations, by the units their descriptions give, and which are replace-on-change,
``willReplaceOnChanges``). And from the Terraform source: durations are read back through
``shortDur`` (internal/provider/resource_docker_service_structures.go), the Go spelling with
``m0s``/``h0m`` trimmed, with no diff suppression.

Over every configuration of tests/unit/stack/test_parity.py, so a service, network or secret
added to stack/topology.py is checked without a test of its own.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stack import secretfiles
from stack.model import NETWORK_ENCRYPTED_LABEL, PULL_ALLOWANCE_S, duration
from tests.unit.stack.forms import plain
from tests.unit.stack.harness import SECRET_VALUES, Captured, Run, local_image_id, run_program
from tests.unit.stack.test_parity import CASES

SCHEMA: dict[str, Any] = json.loads((Path(__file__).parent / "provider_schema.json").read_text())
SERVICE = "docker:index/service:Service"
NETWORK = "docker:index/network:Network"
SECRET = "docker:index/secret:Secret"
CONFIG = "docker:index/serviceConfig:ServiceConfig"
_GO_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$|^(\d+(?:\.\d+)?)(ms)$")
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


@pytest.fixture(scope="module", params=sorted(CASES))
def run(request: pytest.FixtureRequest) -> Run:
    return run_program(CASES[request.param][1])


def _seconds(text: str) -> float:
    match = _GO_DURATION.match(text)
    assert match and text, f"not a Go duration: {text!r}"
    if match.group(5):
        return float(match.group(4)) / 1000
    h, m, s = (float(g) if g else 0.0 for g in match.group(1, 2, 3))
    return h * 3600 + m * 60 + s


def _durations(value: Any, typ: str, path: str) -> Iterator[tuple[str, str]]:
    """(path, value) of every duration-typed input under ``value`` of schema type ``typ``."""
    if isinstance(value, list):
        for element in value:
            yield from _durations(element, typ, path)
        return
    props = SCHEMA["types"][typ]
    for key, item in (value or {}).items():
        spec = props.get(key, {})
        if spec.get("duration"):
            yield f"{path}.{key}", item
        if "ref" in spec:
            yield from _durations(item, spec["ref"], f"{path}.{key}")


def _of(run: list[Captured], typ: str) -> list[Captured]:
    return [r for r in run if r.typ == typ]


def test_the_extract_knows_the_durations_it_checks() -> None:
    # Guards the extract: the health check's and the update policy's durations are there.
    health = SCHEMA["types"][
        "docker:index/ServiceTaskSpecContainerSpecHealthcheck:ServiceTaskSpecContainerSpecHealthcheck"
    ]
    assert {k for k, v in health.items() if v.get("duration")} == {
        "interval",
        "timeout",
        "startPeriod",
    }
    assert SCHEMA["resources"][NETWORK]["options"].get("replaceOnChanges")


def test_every_duration_is_spelled_as_the_provider_reads_it_back(run: Run) -> None:
    found = 0
    for r in _of(run, SERVICE):
        for key, spec in SCHEMA["resources"][SERVICE].items():
            if "ref" in spec:
                for path, value in _durations(r.inputs.get(key), spec["ref"], key):
                    found += 1
                    # 60s would be read back as 1m: a diff on every `pulumi up`.
                    assert value == duration(_seconds(value)), (r.name, path, value)
    assert found >= 10 * len(_of(run, SERVICE))


def test_canonical_durations() -> None:
    assert [duration(s) for s in (60, 180, 90, 3600, 0.25, 10, 1.5, 0)] == [
        "1m",
        "3m",
        "1m30s",
        "1h",
        "250ms",
        "10s",
        "1.5s",
        "0s",
    ]


def test_every_service_and_network_is_deleted_before_it_is_replaced(run: Run) -> None:
    # Their names are fixed and replace-on-change: create-before-delete meets its own name.
    for typ in (SERVICE, NETWORK):
        assert SCHEMA["resources"][typ]["name"].get("replaceOnChanges")
        resources = _of(run, typ)
        assert resources
        for r in resources:
            assert r.delete_before_replace, r.name


def test_no_network_options_are_diffed(run: Run) -> None:
    # The engine adds options of its own (vxlanid_list) beside `encrypted`.
    for r in _of(run, NETWORK):
        assert "options" in r.ignore_changes, r.name
        labels = {lbl["label"]: lbl["value"] for lbl in r.inputs["labels"]}
        encrypted = "encrypted" in (r.inputs.get("options") or {})
        # ...so a change of encryption is a label's change, which replaces the network.
        assert labels[NETWORK_ENCRYPTED_LABEL] == str(encrypted).lower(), r.name


def test_every_secret_is_named_after_its_content_under_the_stacks_key(run: Run) -> None:
    key = secretfiles.normalize(SECRET_VALUES["secretNamingKey"])
    secrets = _of(run, SECRET)
    assert secrets
    for r in secrets:
        data = plain(r.inputs["data"])
        name = r.inputs["name"]
        base = name.rsplit("-", 1)[0]
        import base64

        value = base64.b64decode(data)
        assert name == secretfiles.versioned_name(base, key, value), name
        # Not a bare hash of the value: without the key the name says nothing.
        import hashlib

        assert hashlib.sha256(value).hexdigest()[:8] not in name


def test_every_config_is_named_after_its_content(run: Run) -> None:
    import base64
    import hashlib

    for r in _of(run, CONFIG):
        digest = hashlib.sha256(base64.b64decode(r.inputs["data"])).hexdigest()[:10]
        assert r.inputs["name"].endswith(f"-{digest}"), r.inputs["name"]


def test_every_image_is_pinned_when_the_program_knows_it(run: Run) -> None:
    for r in _of(run, SERVICE):
        image = r.inputs["taskSpec"]["containerSpec"]["image"]
        labels = {lbl["label"]: lbl["value"] for lbl in r.inputs["labels"]}
        # Local images by ID (never asked of a registry), others by digest.
        assert image.startswith("sha256:local-") or _DIGEST.search(image), (r.name, image)
        if image.startswith("sha256:"):
            assert image == local_image_id(image.removeprefix("sha256:local-"))
        assert labels["com.docker.stack.image"] == image


def test_every_volume_mount_labels_the_volume_a_node_creates(run: Run) -> None:
    for r in _of(run, SERVICE):
        for m in r.inputs["taskSpec"]["containerSpec"].get("mounts", ()):
            if m["type"] == "volume":
                labels = m["volumeOptions"]["labels"]
                assert {
                    "label": "com.docker.stack.namespace",
                    "value": r.inputs["name"].split("_")[0],
                } in labels


def test_registry_credentials_reach_every_service_through_the_provider() -> None:
    # Not the service's own `auth`: it is replace-on-change.
    assert SCHEMA["resources"][SERVICE]["auth"].get("replaceOnChanges")
    run = run_program(
        {
            "registry": "reg.example:5000",
            "registryUsername": "deployer",
            "registryPassword": "hunter2-XYZ",
        }
    )
    (provider,) = [r for r in run if r.typ == "pulumi:providers:docker"]
    # The whole block travels as a Pulumi secret: it holds the password.
    wrapped = provider.inputs["registryAuth"]
    assert plain(wrapped) != wrapped
    auth = json.loads(plain(wrapped))
    assert [(a["address"], a["username"]) for a in auth] == [("reg.example:5000", "deployer")]
    for r in _of(run, SERVICE):
        assert r.provider.startswith(provider.urn), r.name
    # Without credentials: the default provider, as before.
    assert not [r for r in run_program({}) if r.typ == "pulumi:providers:docker"]


def test_every_content_derived_name_fits_swarms_64_characters() -> None:
    from stack.topology import StackConfig, build_topology

    topology = build_topology(StackConfig(stack="s" * 31, run_registry=True))
    named = secretfiles.named(topology, {s.key: "v" for s in topology.secrets}, b"k")
    for name in [s.name for s in named.secrets] + [c.name for c in topology.configs]:
        assert len(name) <= 64, name


def test_the_platforms_a_creation_adds_are_never_diffed(run: Run) -> None:
    # Creating with QueryRegistry, the Docker client adds the platforms the registry answers
    # for the image (client/service_create.go); optional and not computed, they would be a
    # change on the second `pulumi up` of every service with placement constraints.
    placement = SCHEMA["types"]["docker:index/ServiceTaskSpecPlacement:ServiceTaskSpecPlacement"]
    assert "platforms" in placement and not placement["platforms"].get("replaceOnChanges")
    for r in _of(run, SERVICE):
        assert "taskSpec.placement.platforms" in r.ignore_changes, r.name
        # Ignoring a path whose parent the new inputs lack is an engine error.
        assert "placement" in r.inputs["taskSpec"], r.name


def _first_start_s(r: Captured) -> float:
    """The slowest first start of a rendered service: the pull, the health check's start
    period, then every retry failing but the last."""
    h = r.inputs["taskSpec"]["containerSpec"]["healthcheck"]
    each = _seconds(h["interval"]) + _seconds(h["timeout"])
    return PULL_ALLOWANCE_S + _seconds(h["startPeriod"]) + int(h["retries"]) * each


def test_every_replicated_service_waits_longer_than_its_slowest_first_start(run: Run) -> None:
    # The provider deletes a service that has not converged in time when creating it.
    replicated = [r for r in _of(run, SERVICE) if "replicated" in r.inputs["mode"]]
    assert replicated
    for r in replicated:
        timeout = r.inputs["convergeConfig"]["timeout"]
        assert _seconds(timeout) >= max(300.0, _first_start_s(r)), (r.name, timeout)
        if r.inputs["name"].endswith("_postgres-replica"):
            assert timeout == "18m"  # a base backup within a 180 s start period
    # `make up` waits as long as the slowest of them (scripts/stackctl.py wait).
    stackctl = _stackctl()
    stack = replicated[0].inputs["name"].split("_")[0]
    assert stackctl.default_timeout(stack) >= max(_first_start_s(r) for r in replicated)


def _stackctl() -> Any:
    import importlib.util

    path = Path(__file__).parents[3] / "scripts" / "stackctl.py"
    spec = importlib.util.spec_from_file_location("stackctl_under_test", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module
