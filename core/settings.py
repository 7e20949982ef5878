"""Every setting homerun reads, from the environment, in one place.

Secrets (database password, admin token) are read from files, the way Swarm secrets
arrive in a container; a plain environment value is never accepted for them.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be a boolean (true/false), got {raw!r}")


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


def _secret_file(env: Mapping[str, str], name: str) -> str | None:
    path = env.get(name)
    if not path:
        return None
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise SettingsError(f"{name} points at {path!r}, which cannot be read: {exc}") from None


def _with_password(url: str, password: str | None) -> str:
    """Insert a password read from a secret file into a DSN that has none."""
    if not password or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    userinfo, host = rest.split("@", 1)
    if ":" in userinfo:
        return url
    from urllib.parse import quote

    return f"{scheme}://{userinfo}:{quote(password, safe='')}@{host}"


@dataclass(frozen=True)
class Settings:
    # --- data stores
    database_url: str = "postgresql://postgres@127.0.0.1:5432/homerun"
    database_replica_url: str | None = None
    queue_redis_url: str = "redis://127.0.0.1:6379/0"
    events_redis_url: str = "redis://127.0.0.1:6379/1"
    # How long a token's reads stick to the primary after it wrote (read-your-writes).
    read_your_writes_seconds: float = 5.0
    replica_probe_seconds: float = 1.0

    # --- API
    host: str = "0.0.0.0"
    port: int = 8000
    admin_token: str | None = None
    max_body_bytes: int = 1024 * 1024
    max_tasks_per_job: int = 100
    max_payload_bytes: int = 256 * 1024
    rate_limit_per_second: float = 50.0
    rate_limit_burst: int = 100

    # --- runner
    runner_id: str = field(default_factory=socket.gethostname)
    runner_concurrency: int = 4
    lease_seconds: float = 15.0
    heartbeat_seconds: float = 3.0
    shutdown_grace_seconds: float = 20.0
    default_timeout_seconds: int = 300
    default_max_attempts: int = 3
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 60.0
    output_limit_bytes: int = 64 * 1024
    allowed_images: tuple[str, ...] = ()
    allow_task_network: bool = False
    docker_url: str | None = None

    # --- events / notifier
    stream_maxlen: int = 10_000
    stream_ttl_seconds: int = 3600
    webhook_allow_private: bool = False
    webhook_max_attempts: int = 8

    # --- plugins
    disabled_plugins: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        d = cls()
        db_password = _secret_file(e, "HOMERUN_DATABASE_PASSWORD_FILE")
        replica_url = e.get("HOMERUN_DATABASE_REPLICA_URL") or None
        return cls(
            database_url=_with_password(e.get("HOMERUN_DATABASE_URL", d.database_url), db_password),
            database_replica_url=_with_password(replica_url, db_password) if replica_url else None,
            queue_redis_url=e.get("HOMERUN_QUEUE_REDIS_URL", d.queue_redis_url),
            events_redis_url=e.get("HOMERUN_EVENTS_REDIS_URL", d.events_redis_url),
            read_your_writes_seconds=_float(
                e, "HOMERUN_READ_YOUR_WRITES_SECONDS", d.read_your_writes_seconds
            ),
            replica_probe_seconds=_float(
                e, "HOMERUN_REPLICA_PROBE_SECONDS", d.replica_probe_seconds
            ),
            host=e.get("HOMERUN_HOST", d.host),
            port=_int(e, "HOMERUN_PORT", d.port, minimum=1),
            admin_token=_secret_file(e, "HOMERUN_ADMIN_TOKEN_FILE"),
            max_body_bytes=_int(e, "HOMERUN_MAX_BODY_BYTES", d.max_body_bytes, minimum=1),
            max_tasks_per_job=_int(e, "HOMERUN_MAX_TASKS_PER_JOB", d.max_tasks_per_job, minimum=1),
            max_payload_bytes=_int(e, "HOMERUN_MAX_PAYLOAD_BYTES", d.max_payload_bytes, minimum=1),
            rate_limit_per_second=_float(
                e, "HOMERUN_RATE_LIMIT_PER_SECOND", d.rate_limit_per_second
            ),
            rate_limit_burst=_int(e, "HOMERUN_RATE_LIMIT_BURST", d.rate_limit_burst, minimum=1),
            runner_id=e.get("HOMERUN_RUNNER_ID") or socket.gethostname(),
            runner_concurrency=_int(
                e, "HOMERUN_RUNNER_CONCURRENCY", d.runner_concurrency, minimum=1
            ),
            lease_seconds=_float(e, "HOMERUN_LEASE_SECONDS", d.lease_seconds),
            heartbeat_seconds=_float(e, "HOMERUN_HEARTBEAT_SECONDS", d.heartbeat_seconds),
            shutdown_grace_seconds=_float(
                e, "HOMERUN_SHUTDOWN_GRACE_SECONDS", d.shutdown_grace_seconds
            ),
            default_timeout_seconds=_int(
                e, "HOMERUN_DEFAULT_TIMEOUT_SECONDS", d.default_timeout_seconds, minimum=1
            ),
            default_max_attempts=_int(
                e, "HOMERUN_DEFAULT_MAX_ATTEMPTS", d.default_max_attempts, minimum=1
            ),
            retry_base_seconds=_float(e, "HOMERUN_RETRY_BASE_SECONDS", d.retry_base_seconds),
            retry_max_seconds=_float(e, "HOMERUN_RETRY_MAX_SECONDS", d.retry_max_seconds),
            output_limit_bytes=_int(
                e, "HOMERUN_OUTPUT_LIMIT_BYTES", d.output_limit_bytes, minimum=1
            ),
            allowed_images=_list(e, "HOMERUN_ALLOWED_IMAGES"),
            allow_task_network=_bool(e, "HOMERUN_ALLOW_TASK_NETWORK", d.allow_task_network),
            docker_url=e.get("HOMERUN_DOCKER_URL") or None,
            stream_maxlen=_int(e, "HOMERUN_STREAM_MAXLEN", d.stream_maxlen, minimum=1),
            stream_ttl_seconds=_int(e, "HOMERUN_STREAM_TTL_SECONDS", d.stream_ttl_seconds),
            webhook_allow_private=_bool(
                e, "HOMERUN_WEBHOOK_ALLOW_PRIVATE", d.webhook_allow_private
            ),
            webhook_max_attempts=_int(
                e, "HOMERUN_WEBHOOK_MAX_ATTEMPTS", d.webhook_max_attempts, minimum=1
            ),
            disabled_plugins=_list(e, "HOMERUN_DISABLED_PLUGINS"),
        )
