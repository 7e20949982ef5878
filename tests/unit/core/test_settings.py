"""Settings come from HOMERUN_* variables, secrets only from files, and all are documented."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from core.settings import Settings, SettingsError, env_name

DOCS = Path(__file__).parents[3] / "docs"


def test_every_field_reads_its_variable() -> None:
    settings = Settings.from_env(
        {
            "HOMERUN_PORT": "9001",
            "HOMERUN_LEASE_SECONDS": "2.5",
            "HOMERUN_ALLOW_TASK_NETWORK": "yes",
            "HOMERUN_ALLOWED_IMAGES": "alpine:*, busybox:1 ,",
            "HOMERUN_DATABASE_REPLICA_URL": "postgresql://u@replica/db",
            "HOMERUN_TASK_IMAGE_REGISTRY": "registry.example:5000",
            "HOMERUN_IMAGE_PULL_TIMEOUT_SECONDS": "42.5",
        }
    )
    assert settings.port == 9001
    assert settings.lease_seconds == 2.5
    assert settings.allow_task_network is True
    assert settings.allowed_images == ("alpine:*", "busybox:1")
    assert settings.database_replica_url == "postgresql://u@replica/db"
    assert settings.task_image_registry == "registry.example:5000"
    assert settings.image_pull_timeout_seconds == 42.5
    assert Settings.from_env({}) == Settings(runner_id=settings.runner_id)


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("HOMERUN_PORT", "eighty", "must be an integer"),
        ("HOMERUN_PORT", "0", "must be >= 1"),
        ("HOMERUN_LEASE_SECONDS", "soon", "must be a number"),
        ("HOMERUN_WEBHOOK_ALLOW_PRIVATE", "maybe", "must be a boolean"),
        ("HOMERUN_ADMIN_TOKEN_FILE", "/nonexistent/token", "cannot be read"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str, complaint: str) -> None:
    with pytest.raises(SettingsError, match=complaint) as caught:
        Settings.from_env({variable: value})
    assert variable in str(caught.value)


def test_secrets_come_from_files_never_from_values(tmp_path: Path) -> None:
    token, password = tmp_path / "token", tmp_path / "password"
    token.write_text("s3cret-token\n")
    password.write_text("p@ss word")
    settings = Settings.from_env(
        {
            "HOMERUN_ADMIN_TOKEN": "from-the-environment",
            "HOMERUN_ADMIN_TOKEN_FILE": str(token),
            "HOMERUN_DATABASE_PASSWORD_FILE": str(password),
            "HOMERUN_DATABASE_URL": "postgresql://homerun@primary:5432/homerun",
            "HOMERUN_DATABASE_REPLICA_URL": "postgresql://homerun@replica:5432/homerun",
        }
    )
    assert settings.admin_token == "s3cret-token"
    assert settings.database_url == "postgresql://homerun:p%40ss%20word@primary:5432/homerun"
    assert (
        settings.database_replica_url == "postgresql://homerun:p%40ss%20word@replica:5432/homerun"
    )
    assert Settings.from_env({"HOMERUN_ADMIN_TOKEN": "plain"}).admin_token is None


def test_every_setting_is_documented() -> None:
    text = "".join(p.read_text() for p in DOCS.glob("*.md"))
    missing = [env_name(f.name) for f in fields(Settings) if f.name != "admin_token"]
    missing = [name for name in missing if name not in text]
    assert not missing, f"settings without a line in docs/: {missing}"
