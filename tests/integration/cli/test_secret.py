"""`homerun secret set | list | rm`, `rekey-secrets` and `secrets-keygen`, as a user runs them."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from core.sealing import Keyring, generate_line
from core.settings import Settings
from homerun.client import TOKEN_VAR, URL_VAR
from tests.harness.services import clean_env
from tests.integration.cli.support import System, run_cli

pytestmark = pytest.mark.integration

VALUE = "cli-s3cret-" + uuid.uuid4().hex


@pytest.fixture
def tmpfs_dir() -> Iterator[Path]:
    path = Path("/dev/shm") / f"homerun-cli-secrets-{uuid.uuid4().hex[:8]}"
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


@pytest.fixture
def settings(settings: Settings, tmpfs_dir: Path) -> Settings:
    return replace(settings, secrets_keyring=generate_line("k1"), secrets_dir=str(tmpfs_dir))


def from_stdin(system: System, *args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    env = clean_env({URL_VAR: system.api.url, TOKEN_VAR: system.token})
    return subprocess.run(
        [sys.executable, "-m", "homerun.cli", *args],
        input=stdin,
        cwd=system.tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_set_list_use_and_remove(system: System) -> None:
    piped = from_stdin(system, "secret", "set", "piped", stdin=VALUE + "\n")
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.strip() == "piped set (key k1)"
    value_file = system.tmp / "value"
    value_file.write_text(VALUE + "-file")
    filed = run_cli(system, "secret", "set", "filed", "--from-file", str(value_file))
    assert filed.code == 0, filed.stderr
    listed = run_cli(system, "secret", "list")
    assert [line.split()[0] for line in listed.text] == ["filed", "piped"]
    assert VALUE not in listed.stdout
    rm = run_cli(system, "secret", "rm", "piped")
    assert rm.code == 0 and rm.text == ["removed piped"]
    again = run_cli(system, "secret", "rm", "piped")
    assert again.code == 1 and "404 not_found" in again.stderr


def test_a_job_with_secrets_through_the_cli_shows_them_redacted(system: System) -> None:
    # The newline that ends `echo value |` is not taken into the value.
    assert from_stdin(system, "secret", "set", "api-key", stdin=VALUE + "\n").returncode == 0
    body = system.tmp / "job.json"
    body.write_text(
        '{"tasks": [{"name": "main", "type": "shell", "secrets": ["api-key"],'
        ' "payload": {"script": "cat /run/secrets/api-key; echo; wc -c </run/secrets/api-key"}}]}'
    )
    submitted = run_cli(system, "submit", "--file", str(body), "--watch")
    assert submitted.code == 0, submitted.stderr + system.logs()
    assert "[redacted:api-key]" in submitted.stdout and VALUE not in submitted.stdout
    assert f"main | {len(VALUE)}" in submitted.text, submitted.stdout
    body.write_text(
        '{"tasks": [{"type": "shell", "secrets": ["nope"], "payload": {"script": "true"}}]}'
    )
    refused = run_cli(system, "submit", "--file", str(body))
    assert refused.code == 1 and "unknown secret 'nope'" in refused.stderr


def test_keygen_and_rekey_move_every_secret_to_the_new_key(system: System) -> None:
    assert from_stdin(system, "secret", "set", "old", stdin=VALUE).returncode == 0
    line = run_cli(system, "secrets-keygen", "k2")
    assert line.code == 0 and line.text[0].startswith("k2 ")
    rotated = replace(
        system,
        settings=replace(
            system.settings,
            secrets_keyring=f"{system.settings.secrets_keyring}\n{line.text[0]}",
        ),
    )
    moved = run_cli(rotated, "rekey-secrets", database=True)
    assert moved.code == 0, moved.stderr
    assert moved.text == ["re-sealed 1 secrets under key k2"]
    assert Keyring.parse(line.text[0]).current == "k2"
    assert run_cli(rotated, "rekey-secrets", database=True).text == [
        "re-sealed 0 secrets under key k2"
    ]
