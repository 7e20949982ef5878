"""Every setting homerun reads, from the environment, in one place.

Secrets (database password, admin token) are read from files, the way Swarm secrets
arrive in a container; a plain environment value is never accepted for them.
``Settings.to_env`` is the inverse of ``Settings.from_env``: what a process that starts
``homerun api|runner|notifier`` (the test harness, the benchmark) hands its child.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from core import egress, runnergroups
from core.models import PRIORITY_BOUND


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


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


def _with_redis_password(url: str, password: str | None) -> str:
    """Insert a password read from a secret file into a Redis URL that has none.

    Redis' ``requirepass`` has no user name: the URL's userinfo is ``:<password>``.
    """
    if not password or "@" in url.split("://", 1)[-1].split("/", 1)[0]:
        return url
    from urllib.parse import quote

    scheme, rest = url.split("://", 1)
    return f"{scheme}://:{quote(password, safe='')}@{rest}"


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
    # Failed token lookups one client address may make, per API process (core/limits.py).
    auth_failures_per_second: float = 5.0
    auth_failure_burst: int = 30
    # Proxies whose X-Forwarded-For names the client (uvicorn's forwarded_allow_ips): the
    # stack's edge. Comma-separated addresses, or * where only the edge can reach the API.
    forwarded_allow_ips: str = "127.0.0.1"
    # What a submission may ask of one task. A client picks these freely, so they bound
    # how much runner time one token can hold: priorities within [-max, max] (never beyond
    # PRIORITY_BOUND), time-outs up to max_task_timeout_seconds (the runner applies it to a
    # task type's own time-out too), max_attempts up to max_task_attempts.
    max_task_priority: int = PRIORITY_BOUND
    max_task_timeout_seconds: int = 24 * 3600
    max_task_attempts: int = 20

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
    # Registry (host[:port]) that task images named without one are pulled from and run
    # as, e.g. homerun/task-shell:0.1.0 -> <registry>/homerun/task-shell:0.1.0. Empty: such
    # images must already be on the engine (single node, built there).
    task_image_registry: str = ""
    # The user and password (HOMERUN_TASK_IMAGE_REGISTRY_PASSWORD_FILE) the runner pulls
    # from that registry with; no user: it pulls anonymously.
    task_image_registry_username: str = ""
    task_image_registry_password: str | None = None
    image_pull_timeout_seconds: float = 300.0
    # Labels every task container, so runners (and test suites) sharing one engine only
    # ever sweep their own deployment's containers. Empty: derived from database_url.
    instance: str = ""
    # Per-attempt files are bind-mounted from here into task containers; it must be the
    # same path on the Docker host and inside the runner (see docs/operations.md).
    work_dir: str = "/var/lib/homerun/work"
    output_file_limit_bytes: int = 1024 * 1024
    # What one attempt may leave under /homerun/artifacts (runners/artifacts.py): files and
    # bytes in all; more fails the task as failure kind ``artifacts``, never retried.
    artifacts_max_files: int = 1000
    artifacts_max_bytes: int = 100 * 1024 * 1024
    # Files a task may carry in its submission (``"files"``, placed under /homerun/files).
    max_task_files: int = 32
    # Each task's read and write rate on the device holding work_dir (runners/blockio.py);
    # 0: no limit.
    task_disk_bytes_per_second: int = 50 * 1024 * 1024
    # The OCI runtime of task containers: runc, runsc (gVisor) or auto (runners/runtimes.py).
    task_runtime: str = "runc"
    log_lines_per_second: float = 50.0
    reconcile_seconds: float = 5.0
    # How long the retry of a lost attempt waits for its container, on another engine, to be
    # seen gone before it runs anyway (runners/lostruns.py).
    lost_container_wait_seconds: float = 60.0
    # Deliveries one token may hold at once across all runners (checked by the queue at
    # claim: a token at its cap is skipped, others are served). 0: no cap.
    max_running_per_token: int = 0

    # --- the Docker API guard (guard/): the one process that holds the engine's socket;
    # the runner's docker_url names the guard's socket instead (docs/operations.md).
    # Where the guard listens (a unix socket), and the engine it forwards allowed calls to.
    guard_socket: str = "/run/homerun-guard/docker.sock"
    guard_upstream: str = "unix:///var/run/docker.sock"

    # --- egress (core/egress.py): what a task with "network": "egress" may reach.
    # HOMERUN_ALLOW_TASK_NETWORK (above) turns it on; then these must say where the proxy is.
    # The allow-list the proxy enforces: host, host:port, *.domain[:port] (ports 80 and 443
    # when none is given). Read by the API (the stack renders the proxy's config from it).
    egress_allow: tuple[str, ...] = ()
    # Addresses the proxy refuses on top of core/egress.py's DENIED_NETWORKS: homerun's own
    # where they are not private (the hosts' public addresses, custom address pools).
    egress_denied_networks: tuple[str, ...] = ()
    # The internal Docker network egress tasks join (its only way out is the proxy), and
    # the proxy's URL on it, handed to tasks as HTTP_PROXY/HTTPS_PROXY.
    egress_network: str = ""
    egress_proxy_url: str = ""
    # The OCI runtime of egress tasks: runsc as registered here runs with --network=none,
    # so they run under runc unless the operator registered a runtime with a network.
    egress_runtime: str = "runc"
    # The key signing each egress attempt's proxy credential (core/egressgate.py), the
    # stack's egress-proxy-key secret, shared with the proxy. Without it a token's narrower
    # egress list cannot be enforced, so the runner refuses such tokens' egress tasks.
    egress_proxy_key: str | None = None

    # --- events / notifier
    stream_maxlen: int = 10_000
    stream_ttl_seconds: int = 3600
    webhook_allow_private: bool = False
    webhook_max_attempts: int = 8
    webhook_retry_base_seconds: float = 2.0
    webhook_retry_max_seconds: float = 600.0
    webhook_timeout_seconds: float = 10.0
    # LISTEN/NOTIFY wakes the notifier at once; this poll is the backstop for lost wake-ups.
    notifier_poll_seconds: float = 2.0
    sse_heartbeat_seconds: float = 15.0
    sse_retry_after_seconds: int = 2
    # Live streams one API process holds open, for one token and in all (core/livestreams.py).
    sse_streams_per_token: int = 20
    sse_streams_per_process: int = 500
    # How soon a revoked token's open streams end.
    sse_revocation_check_seconds: float = 2.0

    # --- schedules (the scheduler runs inside the notifier: core/scheduler.py)
    # How often the scheduler looks for due ticks; a tick fires at most this late.
    schedule_poll_seconds: float = 1.0
    # A tick found later than this after its time was missed: the catch-up policy decides.
    schedule_late_seconds: float = 30.0
    # catchup "all" runs at most this many missed ticks of one schedule; older ones are skipped.
    schedule_catchup_max: int = 10

    # --- retention (the purger runs inside the notifier: notifier/retention.py)
    # Finished jobs older than this are deleted with everything that belongs to them;
    # 0 keeps them forever. A token's own period (homerun token retention) overrides it,
    # and a job submitted with "keep": true is never deleted.
    retention_seconds: int = 30 * 24 * 3600
    # How often a notifier looks for expired jobs.
    retention_poll_seconds: float = 60.0
    # Jobs deleted per transaction; a pass repeats batches until none is left.
    retention_batch: int = 200
    # Pause between two batches, so that a large purge leaves room for the API's work.
    retention_pause_seconds: float = 0.02
    # How long a batch waits for a row lock before it gives up (its jobs wait a pass).
    retention_lock_timeout_ms: int = 1000
    # Port on which the notifier serves /metrics (the purger's figures); 0: not served.
    notifier_metrics_port: int = 0
    # --- secrets (core/sealing.py, runners/secretfiles.py)
    # The keyring that seals secret values, read from HOMERUN_SECRETS_KEYRING_FILE (a Swarm
    # secret); None: the secrets API answers 503 and tasks that list secrets cannot run.
    secrets_keyring: str | None = None
    # Where the runner lays out each attempt's secret files, bind-mounted read-only at
    # /run/secrets: a tmpfs (checked), the same path on the Docker host and in the runner.
    secrets_dir: str = "/run/homerun-secrets"
    secret_max_bytes: int = 64 * 1024
    max_secrets_per_token: int = 100

    # --- plugins
    disabled_plugins: tuple[str, ...] = ()

    # --- per-task resources and runner groups (core/runnergroups.py)
    # The most a task's "resources" may ask for; a task that asks for nothing gets its
    # task type's limits.
    max_task_cpus: float = 4.0
    max_task_memory_mb: int = 8192
    # This runner's labels: it claims only tasks whose runs_on it all has.
    runner_labels: tuple[str, ...] = ()
    # The deployment's runner groups, name=label+label each (name= for no labels), which
    # the API checks a task's runs_on against; the stack writes it from its topology.
    runner_groups: tuple[str, ...] = ("runner=",)
    # --- fan-out (map tasks: core/transitions/fanout.py)
    # Items one map task may fan out over: over_items above it is a 422, an upstream list
    # above it fails the map task (failure kind map). Also the bound on max_parallel.
    max_map_items: int = 10_000
    # --- dashboard (core/ui/): off without a session key (a Swarm secret, shared by replicas)
    ui_session_key: str | None = None
    # A signed-in browser session lasts this long; the token is re-checked on every request.
    ui_session_seconds: int = 12 * 3600

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Every field from ``HOMERUN_<FIELD NAME>``; unset or empty keeps the default."""
        e = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in SECRET_FILES:
                values[f.name] = _secret_file(e, SECRET_FILES[f.name])
                continue
            name = env_name(f.name)
            raw = e.get(name)
            if raw is None or raw == "":
                continue
            parse = _PARSERS.get(str(f.type))
            if parse is None:  # a new field with a type nobody taught us to read
                raise TypeError(f"no parser for {f.name}: {f.type}")
            value = parse(name, raw)
            minimum = 1 if f.name in _AT_LEAST_ONE else 0
            if isinstance(value, int | float) and not isinstance(value, bool) and value < minimum:
                raise SettingsError(f"{name} must be >= {minimum}, got {raw!r}")
            if f.name in CHOICES and value not in CHOICES[f.name]:
                raise SettingsError(
                    f"{name} must be one of {', '.join(CHOICES[f.name])}, got {raw!r}"
                )
            values[f.name] = value
        # The database password arrives as a secret file and is spliced into both DSNs.
        password = _secret_file(e, DATABASE_PASSWORD_FILE)
        values["database_url"] = _with_password(
            values.get("database_url", cls.database_url), password
        )
        if values.get("max_task_priority", 0) > PRIORITY_BOUND:
            # The queue's scores are exact only within the bound (core/queue.py).
            raise SettingsError(
                f"{env_name('max_task_priority')} must be <= {PRIORITY_BOUND},"
                f" got {values['max_task_priority']}"
            )
        default_attempts = values.get("default_max_attempts", cls.default_max_attempts)
        if default_attempts > values.get("max_task_attempts", cls.max_task_attempts):
            raise SettingsError(
                f"{env_name('default_max_attempts')} ({default_attempts}) must not exceed"
                f" {env_name('max_task_attempts')}"
            )
        for name in ("runner_labels", "runner_groups"):
            try:
                if name == "runner_labels":
                    runnergroups.check_labels(values.get(name, ()), env_name(name))
                else:
                    runnergroups.parse_groups(values.get(name, cls.runner_groups))
            except ValueError as exc:
                raise SettingsError(f"{env_name(name)}: {exc}") from None
        _check_egress(values)
        if values.get("database_replica_url"):
            values["database_replica_url"] = _with_password(
                values["database_replica_url"], password
            )
        # Both Redis share one password (requirepass), a secret file like the database's.
        redis_password = _secret_file(e, REDIS_PASSWORD_FILE)
        for key in ("queue_redis_url", "events_redis_url"):
            values[key] = _with_redis_password(values.get(key, getattr(cls, key)), redis_password)
        return cls(**values)

    def to_env(self, secrets_dir: Path | None = None) -> dict[str, str]:
        """The ``HOMERUN_*`` variables from which ``from_env`` reads exactly these settings.

        Every field is written, defaults included, so the reader needs nothing else. A secret
        is written to a file in ``secrets_dir`` (mode 0600) and its ``*_FILE`` variable names
        it, the way ``from_env`` reads it; a password already in a DSN stays in the DSN.
        A value the environment cannot carry (an empty one where the default is not, a list
        item with a comma) is a ``SettingsError`` rather than a different setting.
        """
        defaults = type(self)(runner_id=self.runner_id)
        env: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_FILES:
                if value is not None:
                    env[SECRET_FILES[f.name]] = _write_secret(f.name, value, secrets_dir)
                continue
            name = env_name(f.name)
            render = _RENDERERS.get(str(f.type))
            if render is None:  # a new field with a type nobody taught us to write
                raise TypeError(f"no renderer for {f.name}: {f.type}")
            text = render(name, value)
            if text == "" and value != getattr(defaults, f.name):
                # from_env reads an empty variable as unset, that is, as the default.
                raise SettingsError(f"{name}: {value!r} would read back as the default")
            env[name] = text
        return env


ENV_PREFIX = "HOMERUN_"


def _check_egress(values: Mapping[str, Any]) -> None:
    """Egress settings that could not work are refused at start, naming the variable."""
    for name, parse in (
        ("egress_allow", egress.parse_allow_list),
        ("egress_denied_networks", egress.parse_networks),
    ):
        try:
            parse(values.get(name, ()))
        except egress.EgressConfigError as exc:
            raise SettingsError(f"{env_name(name)}: {exc}") from None
    if values.get("allow_task_network"):
        for name in ("egress_network", "egress_proxy_url"):
            if not values.get(name):
                raise SettingsError(
                    f"{env_name('allow_task_network')}=true needs {env_name(name)}: egress"
                    " tasks reach the network only through the egress proxy"
                )


def env_name(field_name: str) -> str:
    return f"{ENV_PREFIX}{field_name.upper()}"


def _write_secret(field_name: str, value: str, secrets_dir: Path | None) -> str:
    variable = SECRET_FILES[field_name]
    if secrets_dir is None:
        raise SettingsError(f"{field_name} is a secret: to_env needs a directory for {variable}")
    if not value or value != value.strip():
        # _secret_file strips what it reads: this value would not read back as itself.
        raise SettingsError(f"{field_name} must be non-empty without surrounding whitespace")
    Path(secrets_dir).mkdir(parents=True, exist_ok=True)
    path = Path(secrets_dir) / field_name
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(value)
    return str(path)


# Secrets are read from the file a variable names (a Swarm secret), never from its value.
SECRET_FILES = {
    "admin_token": "HOMERUN_ADMIN_TOKEN_FILE",
    "secrets_keyring": "HOMERUN_SECRETS_KEYRING_FILE",
    "ui_session_key": "HOMERUN_UI_SESSION_KEY_FILE",
    "task_image_registry_password": "HOMERUN_TASK_IMAGE_REGISTRY_PASSWORD_FILE",
    "egress_proxy_key": "HOMERUN_EGRESS_PROXY_KEY_FILE",
}
DATABASE_PASSWORD_FILE = "HOMERUN_DATABASE_PASSWORD_FILE"
REDIS_PASSWORD_FILE = "HOMERUN_REDIS_PASSWORD_FILE"

# The OCI runtimes a task may run under (runners/runtimes.py says what each means).
TASK_RUNTIMES = ("runc", "runsc", "auto")
# Settings that take one of a few words: the words.
CHOICES = {"task_runtime": TASK_RUNTIMES}

# Counts and sizes for which zero would mean "nothing works" rather than "off".
_AT_LEAST_ONE = frozenset(
    {
        "port",
        "image_pull_timeout_seconds",
        "max_body_bytes",
        "max_tasks_per_job",
        "max_payload_bytes",
        "rate_limit_burst",
        "auth_failure_burst",
        "runner_concurrency",
        "default_timeout_seconds",
        "default_max_attempts",
        "max_task_timeout_seconds",
        "max_task_attempts",
        "max_task_memory_mb",
        "output_limit_bytes",
        "output_file_limit_bytes",
        "artifacts_max_files",
        "artifacts_max_bytes",
        "stream_maxlen",
        "webhook_max_attempts",
        "sse_retry_after_seconds",
        "sse_streams_per_token",
        "sse_streams_per_process",
        "retention_batch",
        "retention_lock_timeout_ms",
        "secret_max_bytes",
        "max_secrets_per_token",
        "max_map_items",
        "ui_session_seconds",
    }
)


def _parse_int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None


def _parse_float(name: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None


def _parse_bool(name: str, raw: str) -> bool:
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be a boolean (true/false), got {raw!r}")


def _parse_list(name: str, raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _parse_str(name: str, raw: str) -> str:
    return raw


# Keyed by the annotation as written (``from __future__ import annotations`` keeps it a string).
_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "str": _parse_str,
    "str | None": _parse_str,
    "int": _parse_int,
    "float": _parse_float,
    "bool": _parse_bool,
    "tuple[str, ...]": _parse_list,
}


def _render_list(name: str, value: tuple[str, ...]) -> str:
    for item in value:
        if not item or item != item.strip() or "," in item:
            raise SettingsError(f"{name}: {item!r} cannot be an item of a comma-separated list")
    return ",".join(value)


def _render_scalar(name: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # the shortest text float() reads back as the same number
    return "" if value is None else str(value)


# The inverses of _PARSERS, keyed the same way.
_RENDERERS: dict[str, Callable[[str, Any], str]] = {
    "str": _render_scalar,
    "str | None": _render_scalar,
    "int": _render_scalar,
    "float": _render_scalar,
    "bool": _render_scalar,
    "tuple[str, ...]": _render_list,
}
