"""Settings come from HOMERUN_* variables, secrets only from files, and all are documented."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from core.settings import CHOICES, ENV_PREFIX, SECRET_FILES, Settings, SettingsError, env_name

DOCS = Path(__file__).parents[3] / "docs"


def test_every_field_reads_its_variable() -> None:
    settings = Settings.from_env(
        {
            "HOMERUN_PORT": "9001",
            "HOMERUN_LEASE_SECONDS": "2.5",
            "HOMERUN_ALLOW_TASK_NETWORK": "yes",
            "HOMERUN_EGRESS_NETWORK": "homerun_egress",
            "HOMERUN_EGRESS_PROXY_URL": "http://egress-proxy:3128",
            "HOMERUN_ALLOWED_IMAGES": "alpine:*, busybox:1 ,",
            "HOMERUN_DATABASE_REPLICA_URL": "postgresql://u@replica/db",
            "HOMERUN_TASK_IMAGE_REGISTRY": "registry.example:5000",
            "HOMERUN_IMAGE_PULL_TIMEOUT_SECONDS": "42.5",
            "HOMERUN_TASK_RUNTIME": "auto",
        }
    )
    assert settings.port == 9001
    assert settings.lease_seconds == 2.5
    assert settings.allow_task_network is True
    assert settings.allowed_images == ("alpine:*", "busybox:1")
    assert settings.database_replica_url == "postgresql://u@replica/db"
    assert settings.task_image_registry == "registry.example:5000"
    assert settings.image_pull_timeout_seconds == 42.5
    assert settings.task_runtime == "auto"
    assert Settings.from_env({}) == Settings(runner_id=settings.runner_id)


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("HOMERUN_PORT", "eighty", "must be an integer"),
        ("HOMERUN_PORT", "0", "must be >= 1"),
        ("HOMERUN_LEASE_SECONDS", "soon", "must be a number"),
        ("HOMERUN_WEBHOOK_ALLOW_PRIVATE", "maybe", "must be a boolean"),
        ("HOMERUN_ADMIN_TOKEN_FILE", "/nonexistent/token", "cannot be read"),
        ("HOMERUN_TASK_RUNTIME", "kata", "must be one of runc, runsc, auto"),
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


def test_the_redis_password_file_reaches_both_redis_urls(tmp_path: Path) -> None:
    password = tmp_path / "redis-password"
    password.write_text("r3dis/pass\n")
    settings = Settings.from_env(
        {
            "HOMERUN_REDIS_PASSWORD_FILE": str(password),
            "HOMERUN_QUEUE_REDIS_URL": "redis://redis-queue:6379/0",
            "HOMERUN_EVENTS_REDIS_URL": "redis://redis-events:6379/0",
        }
    )
    assert settings.queue_redis_url == "redis://:r3dis%2Fpass@redis-queue:6379/0"
    assert settings.events_redis_url == "redis://:r3dis%2Fpass@redis-events:6379/0"
    # Defaults get it too, and a URL that already carries credentials keeps its own.
    kept = Settings.from_env(
        {
            "HOMERUN_REDIS_PASSWORD_FILE": str(password),
            "HOMERUN_QUEUE_REDIS_URL": "redis://:other@q:6379/0",
        }
    )
    assert kept.queue_redis_url == "redis://:other@q:6379/0"
    assert kept.events_redis_url == "redis://:r3dis%2Fpass@127.0.0.1:6379/1"
    assert Settings.from_env({}).queue_redis_url == "redis://127.0.0.1:6379/0"


def test_every_setting_is_documented() -> None:
    text = "".join(p.read_text() for p in DOCS.glob("*.md"))
    missing = [env_name(f.name) for f in fields(Settings) if f.name != "admin_token"]
    missing = [name for name in missing if name not in text]
    assert not missing, f"settings without a line in docs/: {missing}"


# Fields whose values from_env checks beyond their type: a changed value it accepts.
_VALID_CHANGES: dict[str, object] = {
    "egress_allow": ("a.example", "*.b.example:8443"),
    "egress_denied_networks": ("198.51.100.0/24", "2001:db8::/32"),
}

# Fields whose default is the largest value from_env accepts.
_AT_CEILING = {"max_task_priority"}


# Settings whose items have a grammar of their own (core/runnergroups.py).
_LABELLED: dict[str, tuple[str, ...]] = {
    "runner_labels": ("gpu", "bigdisk"),
    "runner_groups": ("runner=", "big=bigdisk+ssd"),
}


def _changed(name: str, type_: str, default: object) -> object:
    """A value for one field that differs from its default; a new type must be added here."""
    if name in CHOICES:
        return next(choice for choice in CHOICES[name] if choice != default)
    if name in _LABELLED:
        return _LABELLED[name]
    if name in _VALID_CHANGES:
        return _VALID_CHANGES[name]
    if type_ in ("str", "str | None"):
        return f"{name}-value"
    if type_ == "int":
        if name in _AT_CEILING:
            return int(default) - 7  # type: ignore[call-overload]
        return int(default) + 7  # type: ignore[call-overload]
    if type_ == "float":
        return float(default) + 0.25  # type: ignore[arg-type]
    if type_ == "bool":
        return not default
    if type_ == "tuple[str, ...]":
        return (f"{name}-a", f"{name}-b:*")
    raise AssertionError(f"test_to_env_round_trips_every_field: teach _changed {type_}")


def test_to_env_round_trips_every_field(tmp_path: Path) -> None:
    defaults = Settings()
    changed: dict[str, Any] = {
        f.name: _changed(f.name, str(f.type), getattr(defaults, f.name)) for f in fields(Settings)
    }
    every = Settings(**changed)
    assert all(getattr(every, f.name) != getattr(defaults, f.name) for f in fields(Settings))
    env = every.to_env(tmp_path / "secrets")
    assert Settings.from_env(env) == every
    # One variable per field (a secret's is its *_FILE), nothing else, all HOMERUN_*.
    expected = {SECRET_FILES.get(f.name, env_name(f.name)) for f in fields(Settings)}
    assert set(env) == expected
    assert all(name.startswith(ENV_PREFIX) for name in env)
    # The defaults round-trip too, each written out rather than left to the reader.
    assert Settings.from_env(defaults.to_env()) == defaults
    assert len(defaults.to_env()) == len(fields(Settings)) - len(SECRET_FILES)


def test_to_env_writes_secrets_as_files_never_as_values(tmp_path: Path) -> None:
    settings = Settings(admin_token="hr_s3cret", database_url="postgresql://u:pw@db/homerun")
    env = settings.to_env(tmp_path)
    assert "hr_s3cret" not in "".join(env.values())
    secret = Path(env[SECRET_FILES["admin_token"]])
    assert secret.parent == tmp_path
    assert secret.read_text() == "hr_s3cret"
    assert secret.stat().st_mode & 0o777 == 0o600
    # A password already in the DSN stays there: from_env leaves such a DSN alone.
    assert Settings.from_env(env).database_url == "postgresql://u:pw@db/homerun"
    with pytest.raises(SettingsError, match="needs a directory"):
        settings.to_env()


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"work_dir": ""}, "HOMERUN_WORK_DIR: '' would read back as the default"),
        ({"docker_url": ""}, "HOMERUN_DOCKER_URL: '' would read back"),
        ({"allowed_images": ("a:1,b:2",)}, "HOMERUN_ALLOWED_IMAGES: 'a:1,b:2' cannot be"),
        ({"disabled_plugins": (" shell",)}, "HOMERUN_DISABLED_PLUGINS"),
        ({"admin_token": "token\n"}, "admin_token must be non-empty"),
    ],
)
def test_to_env_refuses_what_would_not_read_back(
    tmp_path: Path, overrides: dict[str, object], complaint: str
) -> None:
    with pytest.raises(SettingsError, match=complaint):
        Settings(**overrides).to_env(tmp_path)  # type: ignore[arg-type]


def test_task_caps_that_cannot_hold_are_refused() -> None:
    # The queue's scores are exact only within PRIORITY_BOUND.
    with pytest.raises(SettingsError, match="HOMERUN_MAX_TASK_PRIORITY must be <= 400"):
        Settings.from_env({"HOMERUN_MAX_TASK_PRIORITY": "401"})
    # A default the cap would refuse at submission is a misconfiguration, said at start.
    with pytest.raises(SettingsError, match="HOMERUN_DEFAULT_MAX_ATTEMPTS"):
        Settings.from_env({"HOMERUN_MAX_TASK_ATTEMPTS": "2"})
    assert (
        Settings.from_env(
            {"HOMERUN_MAX_TASK_ATTEMPTS": "2", "HOMERUN_DEFAULT_MAX_ATTEMPTS": "2"}
        ).max_task_attempts
        == 2
    )
