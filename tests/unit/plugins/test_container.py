from __future__ import annotations

import dataclasses

import pytest

from plugins.builtin import container
from plugins.builtin.container import ImageReference, image_allowed
from plugins.tasktypes import NetworkPolicy, PayloadError

from .helpers import CTX, build, errors

ALLOWING = dataclasses.replace(CTX, allowed_images=("alpine:*", "homerun/task-shell:0.1.0"))


def test_spec_runs_argv_in_an_allowed_image() -> None:
    payload = {"image": "alpine:3.19", "argv": ["echo", "hi there"], "env": {"A": "1"}}
    spec = build(container.TASK_TYPE, payload, ALLOWING)
    assert spec.image == "alpine:3.19"
    assert list(spec.argv) == ["echo", "hi there"]
    assert spec.env == {"A": "1"}
    assert spec.files == {}
    assert spec.network is NetworkPolicy.NONE


def test_image_not_allowed_is_a_payload_error_at_image() -> None:
    with pytest.raises(PayloadError) as exc:
        build(container.TASK_TYPE, {"image": "ubuntu:22.04", "argv": ["id"]}, ALLOWING)
    assert exc.value.loc == ("image",)
    assert "ubuntu:22.04" in exc.value.message
    assert "alpine:*" in exc.value.message


def test_nothing_is_allowed_by_default() -> None:
    with pytest.raises(PayloadError) as exc:
        build(container.TASK_TYPE, {"image": "homerun/task-shell:0.1.0", "argv": ["id"]})
    assert exc.value.loc == ("image",)
    assert "allowed: none" in exc.value.message


@pytest.mark.parametrize(
    ("image", "allowed"),
    [
        ("alpine:3.19", True),
        ("alpine:latest", True),
        ("homerun/task-shell:0.1.0", True),
        ("alpine", False),  # no tag: a different reference from alpine:<anything>
        ("alpinex:1", False),
        ("evil/alpine:3", False),
        ("ALPINE:3", False),
        ("homerun/task-shell:0.1.1", False),
        ("homerun/task-python:0.1.0", False),
    ],
)
def test_glob_matching(image: str, allowed: bool) -> None:
    assert image_allowed(image, ALLOWING.allowed_images) is allowed


DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("image", "pattern"),
    [
        # The attack: fnmatch's * crossed ':' and '/', so this came from a registry named
        # "alpine" (port 5000), repository evil/x.
        ("alpine:5000/evil/x:1", "alpine:*"),
        ("alpine:1/x", "alpine:*"),
        ("evil.io/alpine:3", "alpine:*"),  # another registry
        ("localhost/alpine:3", "alpine:*"),
        ("localhost:5000/alpine:3", "alpine:*"),
        ("alpine:3@" + DIGEST, "alpine:*"),  # a digest overrides the tag
        ("alpine@" + DIGEST, "alpine:*"),
        ("team/a/b:1", "team/*:1"),  # * stays within one path component
        ("team:1", "team*"),  # no tag in the pattern: only untagged references
        ("registry.local:5001/team/tool:1", "registry.local:5000/team/*:*"),
        ("registry.local:5000/team/sub/tool:1", "registry.local:5000/team/*:*"),
        ("registry.local.evil:5000/team/tool:1", "registry.local:5000/team/*:*"),
        ("registry.local/team/tool:1", "registry.local:*/team/*:*"),  # no port: no match
        ("ghcr.io/tool:1", "*/tool:1"),  # '*' as a first component is a path, not a registry
        ("x/tool:1", "*.*/tool:1"),
    ],
)
def test_a_wildcard_never_crosses_a_part_of_the_reference(image: str, pattern: str) -> None:
    assert image_allowed(image, (pattern,)) is False


@pytest.mark.parametrize(
    ("image", "pattern"),
    [
        ("alpine:3.19", "alpine:*"),
        ("alpine:5000", "alpine:*"),  # a tag that looks like a port is still a tag
        ("team/tool:1", "team/*:1"),
        ("registry.local:5000/team/tool:1.2.3", "registry.local:5000/team/*:*"),
        ("registry.local:5000/team/tool:1", "registry.local:*/team/tool:1"),
        ("ghcr.io/org/tool:1", "*.io/org/tool:?"),
        ("localhost/x:1", "localhost/x:1"),
        ("alpine@" + DIGEST, "alpine@sha256:*"),
        ("alpine:3@" + DIGEST, "alpine:3@*"),
        ("alpine", "alpine"),
    ],
)
def test_a_wildcard_matches_within_its_part(image: str, pattern: str) -> None:
    assert image_allowed(image, (pattern,)) is True


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("alpine", ((), ("alpine",), None, None)),
        ("alpine:3", ((), ("alpine",), "3", None)),
        ("alpine:5000/evil/x:1", (("alpine", "5000"), ("evil", "x"), "1", None)),
        ("ghcr.io/org/tool", (("ghcr.io",), ("org", "tool"), None, None)),
        ("localhost/x@" + DIGEST, (("localhost",), ("x",), None, DIGEST)),
        ("team/tool:1@" + DIGEST, ((), ("team", "tool"), "1", DIGEST)),
    ],
)
def test_a_reference_is_read_as_docker_reads_it(text: str, parts: tuple[object, ...]) -> None:
    ref = ImageReference.parse(text)
    assert (ref.registry, ref.path, ref.tag, ref.digest) == parts


@pytest.mark.parametrize(
    "image",
    [
        "alpine:3.19",
        "library/alpine",
        "registry.local:5000/team/tool:1.2.3",
        "alpine@sha256:" + "a" * 64,
        "alpine:3@sha256:" + "0" * 64,
    ],
)
def test_schema_accepts_image_references(image: str) -> None:
    assert errors(container.TASK_TYPE, {"image": image, "argv": ["true"]}) == []


@pytest.mark.parametrize(
    "payload",
    [
        {"image": "alpine:3"},
        {"argv": ["true"]},
        {"image": "alpine:3", "argv": []},
        {"image": "alpine:3", "argv": [""]},
        {"image": "alpine:3", "argv": "echo hi"},
        {"image": "alpine:3", "argv": ["echo", 1]},
        {"image": "alpine:3", "argv": ["echo", "a\u0000b"]},
        {"image": "alpine:3", "argv": ["x"] * 257},
        {"image": "Alpine:3", "argv": ["true"]},
        {"image": "alpine:3 --privileged", "argv": ["true"]},
        {"image": "-alpine", "argv": ["true"]},
        {"image": "", "argv": ["true"]},
        {"image": "a" * 256, "argv": ["true"]},
        {"image": "alpine:3", "argv": ["true"], "privileged": True},
        {"image": "alpine:3", "argv": ["true"], "network": "host"},
    ],
)
def test_schema_refuses(payload: object) -> None:
    assert errors(container.TASK_TYPE, payload)


def test_argv_with_a_lone_surrogate_is_a_payload_error_at_its_index() -> None:
    with pytest.raises(PayloadError) as exc:
        build(container.TASK_TYPE, {"image": "alpine:3", "argv": ["echo", "\ud800"]}, ALLOWING)
    assert exc.value.loc == ("argv", 1)
