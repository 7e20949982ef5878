"""Which registry a task image name points at, and the name the runner pulls and runs."""

from __future__ import annotations

import pytest

from runners.images import Login, is_qualified, qualify, split

DIGEST = "sha256:" + "ab" * 32
REGISTRY = "registry.example:5000"


@pytest.mark.parametrize(
    ("image", "qualified"),
    [
        ("homerun/task-shell:0.1.0", f"{REGISTRY}/homerun/task-shell:0.1.0"),
        ("alpine:3", f"{REGISTRY}/alpine:3"),
        ("alpine", f"{REGISTRY}/alpine"),
        ("library/alpine", f"{REGISTRY}/library/alpine"),
        ("a/b/c:t", f"{REGISTRY}/a/b/c:t"),
        (f"alpine@{DIGEST}", f"{REGISTRY}/alpine@{DIGEST}"),
        (f"homerun/task-shell:0.1.0@{DIGEST}", f"{REGISTRY}/homerun/task-shell:0.1.0@{DIGEST}"),
        # Already say where they live: left as written.
        ("127.0.0.1:5000/homerun/task-shell:0.1.0", "127.0.0.1:5000/homerun/task-shell:0.1.0"),
        ("ghcr.io/org/tool:1", "ghcr.io/org/tool:1"),
        ("docker.io/library/alpine:3", "docker.io/library/alpine:3"),
        ("localhost/tool", "localhost/tool"),
        ("localhost:5000/tool:1", "localhost:5000/tool:1"),
        (f"reg:5000/tool@{DIGEST}", f"reg:5000/tool@{DIGEST}"),
    ],
)
def test_unqualified_names_get_the_registry(image: str, qualified: str) -> None:
    assert qualify(image, REGISTRY) == qualified
    assert is_qualified(qualified)


@pytest.mark.parametrize("registry", ["", "  "])
def test_no_registry_leaves_every_name_alone(registry: str) -> None:
    assert qualify("homerun/task-shell:0.1.0", registry) == "homerun/task-shell:0.1.0"
    assert qualify("alpine:3", registry) == "alpine:3"


def test_a_trailing_slash_on_the_registry_is_forgiven() -> None:
    assert qualify("alpine:3", "127.0.0.1:5000/") == "127.0.0.1:5000/alpine:3"


def test_a_registry_with_a_path_prefixes_the_name() -> None:
    assert qualify("homerun/task-shell:1", "reg.example/mirror") == (
        "reg.example/mirror/homerun/task-shell:1"
    )


@pytest.mark.parametrize(
    ("image", "parts"),
    [
        ("alpine", ("alpine", None, None)),
        ("alpine:3", ("alpine", "3", None)),
        ("reg:5000/a/b", ("reg:5000/a/b", None, None)),
        ("reg:5000/a/b:t", ("reg:5000/a/b", "t", None)),
        (f"reg:5000/a/b@{DIGEST}", ("reg:5000/a/b", None, DIGEST)),
        (f"a/b:t@{DIGEST}", ("a/b", "t", DIGEST)),
    ],
)
def test_split_tells_a_port_from_a_tag(
    image: str, parts: tuple[str, str | None, str | None]
) -> None:
    assert split(image) == parts


def test_the_login_goes_only_to_its_own_registry() -> None:
    login = Login.of("127.0.0.1:5000/", "homerun", "pw")
    assert login is not None and login.registry == "127.0.0.1:5000"
    assert login.covers("127.0.0.1:5000/homerun/task-shell:0.1.0")
    assert not login.covers("registry.example:5000/homerun/task-shell:0.1.0")
    assert not login.covers("127.0.0.1:5001/x:1")
    assert not login.covers("homerun/task-shell:0.1.0")  # unqualified: Docker Hub
    assert Login.of("", "homerun", "pw") is None
    assert Login.of("127.0.0.1:5000", "", "pw") is None
    assert "pw" not in repr(login)
