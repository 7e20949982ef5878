"""Deployments that converge, on the real Swarm: a secret rotated with requests flowing, no
failed one; `make up` from a second checkout of the same commit; `make up` with .homerun/
lost. (The unit side: tests/unit/stack/test_provider_schema.py.)"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests.conftest import wait_for
from tests.e2e.conftest import ROOT, Stack
from tests.e2e.test_make_up import _snapshot

PACE_S = 0.05


def _secrets_dir(root: Path, stack: Stack) -> Path:
    return root / ".homerun" / "stacks" / stack.name / "secrets"


def _secret_names(client: docker.DockerClient, service: str) -> set[str]:
    spec = client.services.get(service).attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
    return {ref["SecretName"] for ref in spec.get("Secrets") or ()}


@pytest.fixture
def second_checkout(tmp_path: Path) -> Iterator[Path]:
    """A git worktree of this commit: what another machine's `git clone` would have."""
    path = tmp_path / "checkout"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(path), "HEAD"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    # The same interpreter and packages (a symlink, as every worktree here has).
    (path / ".venv").symlink_to((ROOT / ".venv").resolve())
    try:
        yield path
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=False)


def _up(root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(root / "scripts" / "up.sh")],
        cwd=root,
        env={**env, "HOMERUN_SKIP_SAMPLE": "1"},
        text=True,
        capture_output=True,
        timeout=900,
        check=False,
    )


def test_up_with_lost_state_stops_before_changing_anything(
    stack: Stack, docker_client: docker.DockerClient
) -> None:
    secrets = _secrets_dir(ROOT, stack)
    aside = secrets.with_name("secrets.aside")
    before = _snapshot(docker_client, stack.name)
    secrets.rename(aside)
    try:
        lost = _up(ROOT, stack.env)
        assert lost.returncode != 0
        assert "STOP" in lost.stderr and "nothing was changed" in lost.stderr, lost.stderr[-3000:]
        # No new secret was generated in the lost one's place, and the stack is untouched.
        assert not (secrets / "db-password").exists()
        assert _snapshot(docker_client, stack.name) == before
    finally:
        shutil.rmtree(secrets, ignore_errors=True)
        aside.rename(secrets)


def test_up_from_a_second_checkout_converges_with_the_running_stack(
    stack: Stack, docker_client: docker.DockerClient, second_checkout: Path
) -> None:
    before = _snapshot(docker_client, stack.name)
    # Without the secrets: stops, saying what to copy.
    bare = _up(second_checkout, stack.env)
    assert bare.returncode != 0 and "Copy the secrets directory" in bare.stderr, bare.stderr
    assert _snapshot(docker_client, stack.name) == before
    # With them: the same names, the same specs, nothing restarted.
    shutil.copytree(_secrets_dir(ROOT, stack), _secrets_dir(second_checkout, stack))
    again = _up(second_checkout, stack.env)
    assert again.returncode == 0, again.stderr[-4000:]
    assert _snapshot(docker_client, stack.name) == before


def _rotate(stack: Stack, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts" / "rotate.sh")],
        cwd=ROOT,
        env={**stack.env, "SECRET": "admin-token", **env},
        text=True,
        capture_output=True,
        timeout=900,
        check=False,
    )


@pytest.fixture
def restore_admin_token(stack: Stack, tmp_path: Path) -> Iterator[None]:
    """Afterwards the session's stack has its first admin token again, by the same
    operation (VALUE_FILE): other tests find their jobs by it."""
    yield
    previous = tmp_path / "previous-admin-token"
    previous.write_text(stack.token)
    back = _rotate(stack, VALUE_FILE=str(previous))
    assert back.returncode == 0, back.stderr[-4000:]


def test_rotate_the_admin_token_with_requests_flowing(
    stack: Stack, docker_client: docker.DockerClient, restore_admin_token: None
) -> None:
    api = stack.service("api")
    old_names = _secret_names(docker_client, api)
    outcomes: list[Any] = []
    stop = threading.Event()

    def traffic() -> None:
        # The previous admin token stays a valid token (core/tokens.py: a new secret is a new
        # admin row), so every request must succeed while the API tasks are replaced.
        # Paced at 20/s, under the token's rate limit (HOMERUN_RATE_LIMIT_PER_SECOND, 50):
        # a 429 would be the limit's answer, not the rollout's.
        with stack.http(timeout=10.0) as http:
            while not stop.wait(PACE_S):
                try:
                    outcomes.append(http.get("/v1/jobs", params={"limit": 1}).status_code)
                except httpx.HTTPError as exc:
                    outcomes.append(repr(exc))

    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()
    try:
        rotated = _rotate(stack)
    finally:
        stop.set()
        worker.join(timeout=30)
    assert rotated.returncode == 0, rotated.stderr[-4000:]
    failed = [o for o in outcomes if o != 200]
    assert len(outcomes) > 20 and not failed, (len(outcomes), failed[:10])

    new_token = (_secrets_dir(ROOT, stack) / "admin-token").read_text().strip()
    assert new_token != stack.token
    new_names = _secret_names(docker_client, api)
    assert new_names != old_names
    # The API moved onto the new secret and the old one was pruned.
    gone = old_names - new_names
    assert gone and not {s.name for s in docker_client.secrets.list()} & gone
    with httpx.Client(
        base_url=stack.url, headers={"Authorization": f"Bearer {new_token}"}, timeout=10.0
    ) as http:
        wait_for(
            lambda: http.get("/v1/jobs").status_code == 200,
            timeout=60,
            interval=0.5,
            message="the new admin token to be accepted",
        )
