"""The homerun deployment, described once.

``build_topology(StackConfig(...))`` returns every network, secret, config, volume and service
of one stack. ``stack.compose`` renders it for ``docker stack deploy`` and the Pulumi
components render it into pulumi-docker resources; neither adds a setting of its own.

The contract with the images (``images/``) and with the application (``core/settings.py``)
-------------------------------------------------------------------------------------------
Names services use to reach each other: network aliases equal to the service key, which
``docker stack deploy`` adds by itself and the Pulumi program sets explicitly, so they are
identical in both renderings (the Swarm service names are ``<stack>_<key>`` in both, too):
    postgres-primary:5432  postgres-replica:5432  redis-queue:6379  redis-events:6379  api:8000

Published: the API's port, and only by ``edge`` (HAProxy, one task per node), which
spreads requests over the API tasks it finds by DNS and retries a failed connection on
another one. It is there on every host: with host-mode publishing (no IPVS) two API replicas
on one node could not both bind the port, and with the routing mesh it still turns a rolling
update's dying task into a retry instead of a failed request.

The stack's own registry (``run_registry``)
-------------------------------------------
A multi-node Swarm needs the images on every node. With ``run_registry`` the stack runs
``registry`` (Docker's ``registry:2``, one replica, its blobs on the ``registry`` volume) and
every image is named ``127.0.0.1:<registry_port>/homerun/<name>:<tag>``: engines trust a
registry on 127.0.0.0/8 without TLS, so that name works on every node as long as every node
answers on that port (the design of Docker's own Swarm tutorial). With the routing mesh the
registry publishes the port itself (ingress: every node answers). Without it (host-mode
ports) ``registry-proxy`` (HAProxy in TCP mode, one task per node) holds the port on every
node and forwards to ``registry:5000`` over the ``registry`` overlay. The registry's and the
proxy's own images cannot come from the registry they provide: they are public images
(``registry_image``, ``registry_proxy_image``). The images to push are ``IMAGE_NAMES``;
the runner pulls task images from the same place (HOMERUN_TASK_IMAGE_REGISTRY).

``homerun/app``: command ``homerun api|runner|notifier`` (the entrypoint runs it as given);
``homerun-healthcheck`` is its health check. The runner starts as user 0 with the Docker socket
bind-mounted at /var/run/docker.sock; the entrypoint joins the socket's group and drops root.
Its work directory (HOMERUN_WORK_DIR) is a bind mount of the same host path, because task
containers bind-mount files from it; HOMERUN_INSTANCE is the stack name, so stacks sharing an
engine keep their task containers and work files apart. Settings arrive as the HOMERUN_*
variables of core/settings.py, every secret as a ``*_FILE`` path under /run/secrets, owned by
the image's user (mode 0400); the database URLs carry no password.

``homerun/postgres`` (images/postgres-entrypoint.sh): HOMERUN_PG_ROLE=primary|replica, PGDATA,
POSTGRES_USER, POSTGRES_DB, POSTGRES_PASSWORD_FILE (primary), HOMERUN_PG_PRIMARY_HOST,
HOMERUN_PG_PRIMARY_PORT (replica), HOMERUN_PG_REPLICATION_USER,
HOMERUN_PG_REPLICATION_PASSWORD_FILE (both); ``homerun-postgres-healthcheck`` checks the role.

``homerun/redis`` (images/redis-entrypoint.sh): HOMERUN_REDIS_ROLE=queue|events,
HOMERUN_REDIS_MAXMEMORY. ``queue`` keeps an AOF and never evicts; ``events`` keeps nothing on
disk and evicts keys with a TTL: every event is in the Postgres outbox first.

``homerun/edge``: HAProxy 2.x from Debian, run as ``haproxy -W -db -f <file>``, the file
being a Swarm config rendered by stack/conffiles.py; ``bash`` for its health check.

Network egress (``egress``)
---------------------------
Off by default: no task has any network. With ``egress`` on, the stack adds ``egress``, an
internal overlay (attachable: the runner attaches task containers, which are not services)
and ``egress-out``, a routed one, with ``egress-proxy`` (``homerun/egress-proxy``, Debian's
Squid, run as ``squid -N -f <file>``, the file a Swarm config rendered by core/egress.py from
``egress_allow`` and ``egress_denied_networks``) on both: the only member of ``egress`` with a
way out. The API and the notifier's scheduler (which refuse an egress task unless this is
on and the allow-list is not empty: ``_validator_env``) and the runner (which attaches egress
tasks to ``<stack>_egress`` with HTTP_PROXY/HTTPS_PROXY=http://egress-proxy:3128) get the
HOMERUN_EGRESS_* settings from the same values.

Placement
---------
With ``placement_labels`` off (the default, right for one node) nothing is constrained. On a
multi-node Swarm turn it on and label nodes: ``homerun.postgres=primary``,
``homerun.postgres=replica`` (different nodes: the volumes are node-local), ``homerun.redis=true``
and ``homerun.runner=true`` on any number of nodes, and with ``run_registry``
``homerun.registry=true`` on one node (its volume is node-local: the images live there). API
replicas are spread by the scheduler.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

from core import egress, runnergroups
from core.settings import TASK_RUNTIMES, Settings
from stack import conffiles
from stack.model import (
    Config,
    ConfigRef,
    EndpointMode,
    Healthcheck,
    Mount,
    Network,
    Port,
    PublishMode,
    Resources,
    RestartPolicy,
    Secret,
    SecretRef,
    Service,
    Topology,
    UpdatePolicy,
    Volume,
    check_stack_name,
)

__all__ = [
    "DEFAULT_RESOURCES",
    "DERIVED_SECRET_KEYS",
    "EGRESS_SERVICE_KEYS",
    "IMAGE_NAMES",
    "REGISTRY_SERVICE_KEYS",
    "REGISTRY_USER",
    "SECRET_KEYS",
    "SERVICE_KEYS",
    "RunnerGroup",
    "StackConfig",
    "Topology",
    "build_topology",
    "parse_resource",
    "parse_resources",
    "parse_runner_group",
    "parse_runner_groups",
]

DEFAULT_TAG = "0.1.0"
# The homerun images (scripts/images.sh builds exactly these), all named homerun/<name>:<tag>.
IMAGE_NAMES = ("app", "postgres", "redis", "edge", "task-shell", "task-python", "egress-proxy")
# Services every stack has.
SERVICE_KEYS = (
    "postgres-primary",
    "postgres-replica",
    "redis-queue",
    "redis-events",
    "api",
    "docker-guard",
    "runner",
    "notifier",
    "edge",
)
# Services only a stack with run_registry has; "registry-proxy" only with host-mode ports.
REGISTRY_SERVICE_KEYS = ("registry", "registry-proxy")
# Services only a stack with egress has.
EGRESS_SERVICE_KEYS = ("egress-proxy",)
# Secret key -> what it holds. The file of each is named after its key (see stack.secretfiles).
SECRET_KEYS = {
    "db-password": "password of the homerun database user",
    "replication-password": "password of the Postgres replication user",
    "admin-token": "the API's admin bearer token",
    "redis-password": "requirepass of both Redis (the queue and the streams)",
    "secrets-keyring": "the keyring that seals the API's secrets (core/sealing.py)",
    "ui-session-key": "the key that signs the dashboard's session cookies (every API replica)",
    "registry-password": "password of user homerun at the stack's own registry (run_registry)",
    "egress-proxy-key": "the key signing egress attempts' proxy credentials (core/egressgate.py)",
}
# Secrets computed from another one on the deploying machine, never generated or configured
# on their own: key -> (the key they derive from, what they hold). stack.secretfiles derives
# them, the same bytes for the same source, so both renderings name them alike.
DERIVED_SECRET_KEYS = {
    "registry-htpasswd": ("registry-password", "the registry's htpasswd line for that password"),
}
# The one user of the stack's own registry: make up pushes as it, nodes and runners pull as it.
REGISTRY_USER = "homerun"

# Sized for a small box shared with other work: reservations are what the scheduler
# guarantees, limits what a task may burst to.
DEFAULT_RESOURCES: Mapping[str, Resources] = {
    "postgres-primary": Resources(1.0, 1024, 0.1, 256),
    "postgres-replica": Resources(1.0, 1024, 0.1, 256),
    "redis-queue": Resources(0.5, 512, 0.05, 64),
    "redis-events": Resources(0.5, 256, 0.05, 32),
    "api": Resources(1.0, 512, 0.1, 128),
    # Task containers are the runner's siblings, not its children: their limits are their own.
    "runner": Resources(1.0, 512, 0.1, 128),
    # One small asyncio proxy per node; streams are relayed a chunk at a time.
    "docker-guard": Resources(0.5, 128, 0.05, 32),
    "notifier": Resources(0.5, 256, 0.05, 64),
    "edge": Resources(0.5, 128, 0.05, 32),
    # A layer upload is streamed to disk, but the registry buffers and hashes as it goes.
    "registry": Resources(1.0, 512, 0.1, 64),
    "registry-proxy": Resources(0.5, 128, 0.05, 32),
    # Squid with no cache: connection state and buffers only.
    "egress-proxy": Resources(0.5, 256, 0.05, 64),
}

APP_PORT = 8000
PG_PORT = 5432
REDIS_PORT = 6379
PG_USER = "homerun"
PG_DB = "homerun"
PG_REPLICATION_USER = "replicator"
PG_DATA_MOUNT = "/var/lib/postgresql/data"
EDGE_CONF = "/usr/local/etc/haproxy/haproxy.cfg"
# The port registry:2 listens on in its container (and the proxy in its own).
REGISTRY_PORT = 5000
REGISTRY_DATA = "/var/lib/registry"
# The registry's debug listener (its /debug/health), on its container's loopback only.
REGISTRY_DEBUG_PORT = 5001
DOCKER_SOCKET = "/var/run/docker.sock"
# The Docker API guard's socket (guard/): in a node-local volume that the guard and the
# runners of its node share; the runner's only way to the engine.
GUARD_SOCKET_DIR = "/run/homerun-guard"
GUARD_SOCKET = f"{GUARD_SOCKET_DIR}/docker.sock"
# Users of the images (images/*.Dockerfile) that own their secret files.
APP_UID = 10001
PG_UID = 999
REDIS_UID = 999  # images/redis.Dockerfile's redis user
PROXY_UID = 13  # Debian's proxy user, images/egress-proxy.Dockerfile's
# The runner's work directory: the same path on the host and in the runner, since task
# containers bind-mount files from it (runners/workspace.py).
WORK_DIR = "/var/lib/homerun/work"
# Where the runner places tasks' secret files: a tmpfs on every runner node (scripts/up.sh
# mounts it; docs/operations.md), the same path on the host and in the runner.
SECRETS_DIR = "/run/homerun-secrets"


@dataclass(frozen=True)
class RunnerGroup:
    """A runner service beside the default ``runner``: its own replicas, placement,
    concurrency and labels; it claims only tasks whose ``runs_on`` its labels cover
    (core/runnergroups.py). Rendered as the service ``runner-<name>``."""

    name: str
    replicas: int = 1
    concurrency: int | None = None  # None: the stack's runner_concurrency
    labels: tuple[str, ...] = ()
    # Swarm placement constraints, e.g. node.labels.disk==big.
    constraints: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"runner-{self.name}"

    def env_item(self) -> str:
        """Its item of HOMERUN_RUNNER_GROUPS."""
        return f"{self.name}={'+'.join(sorted(self.labels))}"


def parse_runner_group(text: str) -> RunnerGroup:
    """``NAME:replicas=N,concurrency=N,labels=a+b,constraint=EXPR`` (every part optional,
    ``constraint`` repeatable): the one form the compose CLI and Pulumi config both take."""
    name, _, rest = text.partition(":")
    fields: dict[str, Any] = {"name": name, "constraints": []}
    for part in (p for p in rest.split(",") if p):
        key, sep, value = part.partition("=")
        if not sep or key not in {"replicas", "concurrency", "labels", "constraint"}:
            raise ValueError(
                f"expected NAME:replicas=N,concurrency=N,labels=a+b,constraint=EXPR; got {text!r}"
            )
        if key == "constraint":
            fields["constraints"].append(value)
        elif key == "labels":
            fields["labels"] = tuple(label for label in value.split("+") if label)
        else:
            fields[key] = int(value)
    fields["constraints"] = tuple(fields["constraints"])
    return RunnerGroup(**fields)


def parse_runner_groups(items: Iterable[str]) -> tuple[RunnerGroup, ...]:
    return tuple(parse_runner_group(item) for item in items)


@dataclass(frozen=True)
class StackConfig:
    """Every knob of a deployment. Pulumi config and the compose CLI both fill this in."""

    stack: str = "homerun"
    # "" uses images present on each node; "registry.example:5000" prefixes every image.
    registry: str = ""
    tag: str = DEFAULT_TAG
    api_replicas: int = 2
    runner_replicas: int = 1
    notifier_replicas: int = 1
    api_port: int = 8000
    endpoint_mode: EndpointMode = EndpointMode.VIP
    publish_mode: PublishMode = PublishMode.INGRESS
    encrypt_networks: bool = False
    placement_labels: bool = False
    label_prefix: str = "homerun"
    runner_concurrency: int = 4
    # Deliveries one API token may hold at once over all runners (0: no cap). None: one
    # less than all the runners' slots (running_cap), so that one token's long tasks can
    # never hold every slot while another token waits.
    max_running_per_token: int | None = None
    allowed_images: tuple[str, ...] = ()
    # Connections one client address may hold at the edge at once (with host-mode ports,
    # where the edge sees clients' addresses): one client holding thousands of idle
    # connections exhausted the port's forwarder for everyone.
    edge_connections_per_source: int = 200
    # With host-mode ports, the edge's health check also asks the published port through
    # the node (_edge_healthcheck); off where the node's firewall refuses containers.
    edge_checks_published_port: bool = True
    # Per-service overrides of DEFAULT_RESOURCES.
    resources: Mapping[str, Resources] = field(default_factory=dict)
    docker_socket: str = DOCKER_SOCKET
    # Run a registry on the Swarm and take the images from it (instead of ``registry``).
    run_registry: bool = False
    registry_port: int = 5000
    registry_image: str = "registry:2"
    registry_proxy_image: str = "haproxy:2.6"
    # Runner services beside the default "runner" (whose group has no labels).
    runner_groups: tuple[RunnerGroup, ...] = ()
    # How long finished jobs are kept (HOMERUN_RETENTION_SECONDS; 0: forever): 30 days.
    retention_seconds: int = 30 * 24 * 3600
    # How often each notifier looks for expired jobs (HOMERUN_RETENTION_POLL_SECONDS).
    retention_poll_seconds: int = 60
    # Items one map task may fan out over (HOMERUN_MAX_MAP_ITEMS), read where job bodies
    # are validated (the API and the notifier's scheduler: _validator_env).
    max_map_items: int = Settings.max_map_items
    # What one task may leave under /homerun/artifacts (HOMERUN_ARTIFACTS_MAX_FILES and
    # HOMERUN_ARTIFACTS_MAX_BYTES), read by the runners that collect them.
    artifacts_max_files: int = Settings.artifacts_max_files
    artifacts_max_bytes: int = Settings.artifacts_max_bytes
    # Network egress for tasks that ask for it, through egress-proxy (core/egress.py):
    # the allow-list (host, host:port, *.domain[:port]) and extra refused networks (CIDRs).
    egress: bool = False
    egress_allow: tuple[str, ...] = ()
    egress_denied_networks: tuple[str, ...] = ()
    # The OCI runtime of task containers (HOMERUN_TASK_RUNTIME, runners/runtimes.py): runc,
    # runsc (gVisor; the runners refuse to start on a node whose engine lacks it) or auto.
    task_runtime: str = "runc"

    def __post_init__(self) -> None:
        check_stack_name(self.stack)
        try:
            egress.parse_allow_list(self.egress_allow)
            egress.parse_networks(self.egress_denied_networks)
        except egress.EgressConfigError as exc:
            raise ValueError(f"egress: {exc}") from None
        object.__setattr__(self, "endpoint_mode", EndpointMode(self.endpoint_mode))
        object.__setattr__(self, "publish_mode", PublishMode(self.publish_mode))
        if self.endpoint_mode is EndpointMode.DNSRR and self.publish_mode is PublishMode.INGRESS:
            # Docker refuses this pair: the routing mesh needs a virtual IP to route to.
            raise ValueError("endpoint_mode dnsrr needs publish_mode host (ingress needs a VIP)")
        if self.api_replicas < 1:
            raise ValueError("api_replicas must be >= 1")
        if self.runner_replicas < 0 or self.notifier_replicas < 0:
            raise ValueError("replicas must be >= 0")
        if not 1 <= self.api_port <= 65535:
            raise ValueError(f"api_port out of range: {self.api_port}")
        if self.run_registry and self.registry:
            raise ValueError(
                f"run_registry and registry {self.registry!r} both name where images come "
                "from: choose one"
            )
        if not 1 <= self.registry_port <= 65535:
            raise ValueError(f"registry_port out of range: {self.registry_port}")
        if self.run_registry and self.registry_port == self.api_port:
            # Both are bound on every node (edge and registry or registry-proxy).
            raise ValueError(f"registry_port and api_port are both {self.api_port}")
        if self.run_registry and not (self.registry_image and self.registry_proxy_image):
            raise ValueError("run_registry needs registry_image and registry_proxy_image")
        if self.runner_concurrency < 1:
            raise ValueError("runner_concurrency must be >= 1")
        if self.edge_connections_per_source < 1:
            raise ValueError("edge_connections_per_source must be >= 1")
        if self.max_running_per_token is not None and self.max_running_per_token < 0:
            raise ValueError("max_running_per_token must be >= 0 (0: no cap)")
        if self.task_runtime not in TASK_RUNTIMES:
            raise ValueError(
                f"task_runtime must be one of {', '.join(TASK_RUNTIMES)}: {self.task_runtime!r}"
            )
        if self.retention_seconds < 0:
            raise ValueError("retention_seconds must be >= 0 (0: keep finished jobs forever)")
        if self.retention_poll_seconds < 1:
            raise ValueError("retention_poll_seconds must be >= 1")
        if self.max_map_items < 1:
            raise ValueError("max_map_items must be >= 1")
        if self.artifacts_max_files < 1 or self.artifacts_max_bytes < 1:
            raise ValueError("artifacts_max_files and artifacts_max_bytes must be >= 1")
        unknown = set(self.resources) - set(DEFAULT_RESOURCES)
        if unknown:
            raise ValueError(f"resources for unknown services: {sorted(unknown)}")
        for group in self.runner_groups:
            if group.replicas < 0 or (group.concurrency is not None and group.concurrency < 1):
                raise ValueError(f"runner group {group.name}: replicas >= 0, concurrency >= 1")
        # The API reads the same items (HOMERUN_RUNNER_GROUPS): refuse here what it would.
        runnergroups.parse_groups(self.runner_groups_env)

    @property
    def runner_groups_env(self) -> tuple[str, ...]:
        """HOMERUN_RUNNER_GROUPS: the default runner (no labels) and each declared group."""
        return ("runner=", *(group.env_item() for group in self.runner_groups))

    @property
    def runner_slots(self) -> int:
        """Tasks all the stack's runners run at once: every runner service's replicas times
        its concurrency."""
        groups = sum(
            g.replicas * (g.concurrency if g.concurrency is not None else self.runner_concurrency)
            for g in self.runner_groups
        )
        return self.runner_replicas * self.runner_concurrency + groups

    @property
    def running_cap(self) -> int:
        """HOMERUN_MAX_RUNNING_PER_TOKEN: as set, or one slot less than all there are (fair
        share alone cannot take back a slot a running task holds: docs/operations.md), or
        no cap (0) where there is only one slot to share."""
        if self.max_running_per_token is not None:
            return self.max_running_per_token
        return self.runner_slots - 1 if self.runner_slots >= 2 else 0

    @property
    def image_registry(self) -> str:
        """Where the services' images come from: host[:port], or "" for each node's own."""
        if self.registry:
            return self.registry.rstrip("/")
        if self.run_registry:
            return f"127.0.0.1:{self.registry_port}"
        return ""

    def local_image(self, name: str) -> str:
        """One of IMAGE_NAMES as scripts/images.sh tags it on the machine that built it."""
        return f"homerun/{name}:{self.tag}"

    def image(self, name: str) -> str:
        """One of IMAGE_NAMES as the services name it."""
        registry = self.image_registry
        return f"{registry}/{self.local_image(name)}" if registry else self.local_image(name)

    def resources_of(self, key: str) -> Resources:
        if key in {group.key for group in self.runner_groups}:
            key = "runner"  # a group's runners are sized like the default one
        return self.resources.get(key, DEFAULT_RESOURCES[key])

    def constraint(self, label: str, value: str) -> tuple[str, ...]:
        if not self.placement_labels:
            return ()
        return (f"node.labels.{self.label_prefix}.{label}=={value}",)


def parse_resource(text: str) -> tuple[str, Resources]:
    """``api=1.5,768`` or ``api=1.5,768,0.2,256``: cpus, MiB[, reserved cpus, reserved MiB].

    Without reservations, the default ones are kept (capped at the new limits).
    """
    key, _, values = text.partition("=")
    parts = values.split(",")
    if key not in DEFAULT_RESOURCES or len(parts) not in (2, 4):
        raise ValueError(
            f"expected SERVICE=CPUS,MEMORY_MB[,RESERVED_CPUS,RESERVED_MB] with SERVICE one of "
            f"{', '.join(DEFAULT_RESOURCES)}; got {text!r}"
        )
    cpus, memory = float(parts[0]), int(parts[1])
    if len(parts) == 4:
        return key, Resources(cpus, memory, float(parts[2]), int(parts[3]))
    base = DEFAULT_RESOURCES[key]
    return key, Resources(
        cpus, memory, min(base.reserve_cpus, cpus), min(base.reserve_memory_mb, memory)
    )


def parse_resources(items: Iterable[str]) -> dict[str, Resources]:
    return dict(parse_resource(item) for item in items)


def build_topology(config: StackConfig) -> Topology:
    s = config.stack
    networks: tuple[Network, ...] = (
        # The API's front door and the notifier's way out to webhook receivers.
        Network("public", f"{s}_public", internal=False, encrypted=config.encrypt_networks),
        # Postgres and Redis live here only: no route out, nothing published.
        Network("data", f"{s}_data", internal=True, encrypted=config.encrypt_networks),
    )
    volumes = tuple(
        Volume(k, f"{s}_{k}") for k in ("pg-primary", "pg-replica", "redis-queue", "guard-socket")
    )
    configs: tuple[Config, ...] = (
        _config(
            s,
            "edge-conf",
            conffiles.haproxy_cfg(
                listen_port=APP_PORT,
                backend_host="api",
                backend_port=APP_PORT,
                # Room for a start-first update of every replica at once.
                slots=max(4, 2 * config.api_replicas),
                # Behind the routing mesh every client has the mesh's address.
                connections_per_source=config.edge_connections_per_source
                if config.publish_mode is PublishMode.HOST
                else None,
            ),
        ),
    )
    services: tuple[Service, ...] = (
        _postgres(config, "primary"),
        _postgres(config, "replica"),
        _redis(config, "queue"),
        _redis(config, "events"),
        _api(config),
        _docker_guard(config),
        _runner(config),
        *(_runner(config, group) for group in config.runner_groups),
        _notifier(config),
        _edge(config),
    )
    if config.egress:
        part = _egress_part(config)
        networks += part.networks
        configs += part.configs
        services += part.services
    if config.run_registry:
        # First: the registry part is deployed on its own before the rest (the images of
        # the rest are pushed into it in between), and renders the same either way.
        registry = _registry_part(config)
        networks = registry.networks + networks
        configs = registry.configs + configs
        volumes = registry.volumes + volumes
        services = registry.services + services
    # Only the secrets some service mounts: a stack without its own registry has no
    # registry password in Swarm.
    used = {ref.secret for svc in services for ref in svc.secrets}
    secrets = tuple(
        Secret(key, f"{s}_{key}") for key in (*SECRET_KEYS, *DERIVED_SECRET_KEYS) if key in used
    )
    return Topology(s, networks, secrets, configs, volumes, services)


def _config(stack: str, key: str, data: str) -> Config:
    digest = hashlib.sha256(data.encode()).hexdigest()[:10]
    return Config(key, f"{stack}_{key}-{digest}", data)


class _Common(TypedDict):
    key: str
    name: str
    resources: Resources
    restart: RestartPolicy
    endpoint_mode: EndpointMode
    labels: Mapping[str, str]


def _common(config: StackConfig, key: str) -> _Common:
    """The fields every service shares: its names, limits, restart policy and labels."""
    prefix = config.label_prefix
    return _Common(
        key=key,
        name=f"{config.stack}_{key}",
        resources=config.resources_of(key),
        restart=RestartPolicy(),
        endpoint_mode=config.endpoint_mode,
        labels={f"{prefix}.stack": config.stack, f"{prefix}.service": key},
    )


def _secret(key: str, uid: int = APP_UID) -> SecretRef:
    return SecretRef(secret=key, target=key, uid=uid, gid=uid)


# --------------------------------------------------------------------------- data services


def _postgres(config: StackConfig, role: str) -> Service:
    key = f"postgres-{role}"
    env = {
        "HOMERUN_PG_ROLE": role,
        "PGDATA": PG_DATA_MOUNT,
        "HOMERUN_PG_REPLICATION_USER": PG_REPLICATION_USER,
        "HOMERUN_PG_REPLICATION_PASSWORD_FILE": _secret("replication-password").path,
    }
    secrets = [_secret("replication-password", PG_UID)]
    if role == "primary":
        # The primary creates the application role and database and sets their password.
        env |= {
            "POSTGRES_USER": PG_USER,
            "POSTGRES_DB": PG_DB,
            "POSTGRES_PASSWORD_FILE": _secret("db-password").path,
        }
        secrets.insert(0, _secret("db-password", PG_UID))
    else:
        env |= {"HOMERUN_PG_PRIMARY_HOST": "postgres-primary", "HOMERUN_PG_PRIMARY_PORT": "5432"}
    return Service(
        **_common(config, key),
        image=config.image("postgres"),
        command=(),
        env=env,
        networks=("data",),
        replicas=1,
        secrets=tuple(secrets),
        mounts=(Mount("volume", f"pg-{role}", PG_DATA_MOUNT),),
        # Ready, and in the role it was started for (a replica must be in recovery).
        healthcheck=Healthcheck(
            test=("CMD", "homerun-postgres-healthcheck"),
            # A replica's first start is a base backup of the whole primary.
            start_period_s=60.0 if role == "primary" else 180.0,
        ),
        constraints=config.constraint("postgres", role),
        # Time for a clean shutdown checkpoint rather than crash recovery at the next start.
        stop_grace_s=60.0,
    )


def _redis(config: StackConfig, role: str) -> Service:
    key = f"redis-{role}"
    return Service(
        **_common(config, key),
        image=config.image("redis"),
        command=(),
        env={
            # queue: AOF + noeviction; events: nothing on disk + volatile-lru (images/redis.*).
            "HOMERUN_REDIS_ROLE": role,
            "HOMERUN_REDIS_MAXMEMORY": f"{_maxmemory_mb(config.resources_of(key))}mb",
            # Without a password anything on the data network could rewrite the queue or
            # inject events for any token (images/redis-entrypoint.sh).
            "HOMERUN_REDIS_PASSWORD_FILE": _secret("redis-password", REDIS_UID).path,
        },
        networks=("data",),
        replicas=1,
        secrets=(_secret("redis-password", REDIS_UID),),
        # Only the queue keeps files; the events Redis is a cache of the Postgres outbox.
        mounts=(Mount("volume", "redis-queue", "/data"),) if role == "queue" else (),
        healthcheck=Healthcheck(
            # PONG, asked with the password (images/redis-healthcheck.sh).
            test=("CMD", "homerun-redis-healthcheck"),
            start_period_s=20.0,
        ),
        constraints=config.constraint("redis", "true"),
        stop_grace_s=30.0,
    )


def _maxmemory_mb(resources: Resources) -> int:
    # Below the container limit, so Redis applies its policy before the kernel's OOM killer;
    # the rest is for the AOF rewrite fork and client buffers.
    return max(16, resources.memory_mb * 3 // 4)


# --------------------------------------------------------------------------- application


def _app_env(config: StackConfig) -> dict[str, str]:
    """What every homerun process needs: core/settings.py reads exactly these names."""
    db = f"postgresql://{PG_USER}@%s:{PG_PORT}/{PG_DB}"
    return {
        "HOMERUN_DATABASE_URL": db % "postgres-primary",
        "HOMERUN_DATABASE_REPLICA_URL": db % "postgres-replica",
        "HOMERUN_DATABASE_PASSWORD_FILE": _secret("db-password").path,
        "HOMERUN_REDIS_PASSWORD_FILE": _secret("redis-password").path,
        "HOMERUN_QUEUE_REDIS_URL": f"redis://redis-queue:{REDIS_PORT}/0",
        "HOMERUN_EVENTS_REDIS_URL": f"redis://redis-events:{REDIS_PORT}/0",
        # Every stack's URLs look alike (postgres-primary/homerun), so the instance that
        # labels and sweeps task containers is the stack name: two stacks on one engine
        # never reap each other's tasks or share a work directory.
        "HOMERUN_INSTANCE": config.stack,
    }


def _app_secrets() -> tuple[SecretRef, ...]:
    """The secret files ``_app_env`` names, mounted in every homerun process."""
    return (_secret("db-password"), _secret("redis-password"))


def _egress_env(config: StackConfig) -> dict[str, str]:
    """The egress settings of the API (it refuses what the deployment cannot run) and of
    the runner (it attaches egress tasks to the network), from one set of config values."""
    if not config.egress:
        return {}
    return {
        "HOMERUN_ALLOW_TASK_NETWORK": "true",
        "HOMERUN_EGRESS_ALLOW": ",".join(config.egress_allow),
        "HOMERUN_EGRESS_DENIED_NETWORKS": ",".join(config.egress_denied_networks),
        "HOMERUN_EGRESS_NETWORK": f"{config.stack}_egress",
        "HOMERUN_EGRESS_PROXY_URL": f"http://egress-proxy:{egress.PROXY_PORT}",
    }


def _task_types_env(config: StackConfig) -> dict[str, str]:
    """What the processes that check task payloads need, from one config value: the API
    validates each payload at submission and the runner again when it builds the
    container, so an allow-list only the runner had made the API refuse every image."""
    return {"HOMERUN_ALLOWED_IMAGES": ",".join(config.allowed_images)}


def _validator_env(config: StackConfig) -> dict[str, str]:
    """The settings of ``core.validation.VALIDATOR_SETTINGS`` that the stack sets, for every
    service that validates job bodies: the API (``POST /v1/jobs``, a schedule's job at
    ``POST /v1/schedules``) and the notifier, whose scheduler validates each tick's job
    again when it fires. One helper for both, so they cannot drift: a notifier without the
    API's allow-list, egress or runner groups skipped every tick of a schedule the API had
    accepted (tests/unit/stack/test_validator_env.py holds the two equal)."""
    return {
        **_task_types_env(config),
        **_egress_env(config),
        # Which runs_on some runner group can take (only when groups are declared: the
        # default, one group without labels, is the setting's own default).
        **(
            {"HOMERUN_RUNNER_GROUPS": ",".join(config.runner_groups_env)}
            if config.runner_groups
            else {}
        ),
        "HOMERUN_MAX_MAP_ITEMS": str(config.max_map_items),
    }


# The app image's own check: GET /healthz for the API; for the runner and notifier, that the
# process lives (both ride out lost dependencies, so probing Postgres or Redis would only
# make Swarm restart them in a loop during an outage).
_APP_HEALTHCHECK = Healthcheck(test=("CMD", "homerun-healthcheck"), start_period_s=30.0)


def _api(config: StackConfig) -> Service:
    return Service(
        **_common(config, "api"),
        image=config.image("app"),
        command=("homerun", "api"),
        env={
            **_app_env(config),
            **_validator_env(config),
            "HOMERUN_ADMIN_TOKEN_FILE": _secret("admin-token").path,
            "HOMERUN_SECRETS_KEYRING_FILE": _secret("secrets-keyring").path,
            "HOMERUN_UI_SESSION_KEY_FILE": _secret("ui-session-key").path,
            "HOMERUN_HOST": "0.0.0.0",
            "HOMERUN_PORT": str(APP_PORT),
            # The edge adds X-Forwarded-For (the client's address, for the per-source
            # limits); no published port reaches the API except through it.
            "HOMERUN_FORWARDED_ALLOW_IPS": "*",
        },
        networks=("public", "data"),
        replicas=config.api_replicas,
        secrets=(
            *_app_secrets(),
            _secret("admin-token"),
            _secret("secrets-keyring"),
            _secret("ui-session-key"),
        ),
        healthcheck=_APP_HEALTHCHECK,
        # The new task must be healthy before an old one stops; a task that never gets
        # healthy rolls the whole service back to the previous spec.
        update=UpdatePolicy(
            order="start-first", failure_action="rollback", delay_s=5.0, monitor_s=15.0
        ),
        rollback=UpdatePolicy(order="start-first", failure_action="pause", monitor_s=10.0),
        stop_grace_s=20.0,
    )


def _runner(config: StackConfig, group: RunnerGroup | None = None) -> Service:
    concurrency = config.runner_concurrency
    if group is not None and group.concurrency is not None:
        concurrency = group.concurrency
    return Service(
        **_common(config, "runner" if group is None else group.key),
        image=config.image("app"),
        command=("homerun", "runner"),
        env={
            **_app_env(config),
            **_task_types_env(config),
            **(
                {"HOMERUN_RUNNER_LABELS": ",".join(sorted(group.labels))}
                if group is not None
                else {}
            ),
            **_egress_env(config),
            # The runner signs each egress attempt's proxy credential (core/egressgate.py).
            **(
                {"HOMERUN_EGRESS_PROXY_KEY_FILE": _secret(EGRESS_KEY).path} if config.egress else {}
            ),
            "HOMERUN_RUNNER_CONCURRENCY": str(concurrency),
            "HOMERUN_ARTIFACTS_MAX_FILES": str(config.artifacts_max_files),
            "HOMERUN_ARTIFACTS_MAX_BYTES": str(config.artifacts_max_bytes),
            "HOMERUN_TASK_RUNTIME": config.task_runtime,
            "HOMERUN_MAX_RUNNING_PER_TOKEN": str(config.running_cap),
            # Never the engine's own socket: the guard's, which lets through only what a
            # task needs (guard/policy.py).
            "HOMERUN_DOCKER_URL": f"unix://{GUARD_SOCKET}",
            "HOMERUN_WORK_DIR": WORK_DIR,
            # The runner opens a task's secrets just before its run (runners/secretfiles.py).
            "HOMERUN_SECRETS_KEYRING_FILE": _secret("secrets-keyring").path,
            "HOMERUN_SECRETS_DIR": SECRETS_DIR,
            # Task types name their images unqualified (homerun/task-shell:<tag>); on a
            # multi-node Swarm they come from where the stack's own images do.
            **(
                {"HOMERUN_TASK_IMAGE_REGISTRY": config.image_registry}
                if config.image_registry
                else {}
            ),
            # The stack's own registry wants its password for pulls too.
            **(
                {
                    "HOMERUN_TASK_IMAGE_REGISTRY_USERNAME": REGISTRY_USER,
                    "HOMERUN_TASK_IMAGE_REGISTRY_PASSWORD_FILE": _secret("registry-password").path,
                }
                if config.run_registry
                else {}
            ),
        },
        networks=("data",),
        replicas=config.runner_replicas if group is None else group.replicas,
        secrets=(
            *_app_secrets(),
            _secret("secrets-keyring"),
            *((_secret("registry-password"),) if config.run_registry else ()),
            *_egress_secrets(config),
        ),
        # The runner starts task containers next to itself on the node's engine, through
        # its node's docker-guard.
        mounts=(
            Mount("volume", "guard-socket", GUARD_SOCKET_DIR),
            Mount("bind", WORK_DIR, WORK_DIR),
            Mount("bind", SECRETS_DIR, SECRETS_DIR),
        ),
        # Started as root only to hand itself the work and secrets directories (and keep
        # CAP_CHOWN for the secret files); the image's entrypoint then drops to its
        # unprivileged user (images/app-entrypoint.sh).
        user="0",
        healthcheck=_APP_HEALTHCHECK,
        constraints=(
            *config.constraint("runner", "true"),
            *(group.constraints if group is not None else ()),
        ),
        # Longer than HOMERUN_SHUTDOWN_GRACE_SECONDS (20 s): running tasks hand back cleanly.
        stop_grace_s=30.0,
    )


def _docker_guard(config: StackConfig) -> Service:
    """The one service that mounts the engine's socket: a guard on every node (global), so
    each runner, whichever group and node, has its own node's (guard/)."""
    return Service(
        **_common(config, "docker-guard"),
        image=config.image("app"),
        command=("homerun", "guard"),
        env={
            # The profile of the runners it serves: their instance, directories and egress.
            "HOMERUN_INSTANCE": config.stack,
            "HOMERUN_WORK_DIR": WORK_DIR,
            "HOMERUN_SECRETS_DIR": SECRETS_DIR,
            # The runtime the runners were given: the only one it lets them ask for.
            "HOMERUN_TASK_RUNTIME": config.task_runtime,
            **_egress_env(config),
            "HOMERUN_GUARD_SOCKET": GUARD_SOCKET,
            "HOMERUN_GUARD_UPSTREAM": f"unix://{DOCKER_SOCKET}",
        },
        # No network: it talks to two unix sockets. (`docker stack deploy` puts a service
        # without networks on the stack's "default" overlay, where nothing else is.)
        networks=(),
        replicas=None,
        mounts=(
            Mount("bind", config.docker_socket, DOCKER_SOCKET),
            Mount("volume", "guard-socket", GUARD_SOCKET_DIR),
            # Read-only, to follow a bind source to where it really leads (symlinks).
            Mount("bind", WORK_DIR, WORK_DIR, read_only=True),
            Mount("bind", SECRETS_DIR, SECRETS_DIR, read_only=True),
        ),
        # Started as root only to join the socket's group (images/app-entrypoint.sh).
        user="0",
        healthcheck=_APP_HEALTHCHECK,
        # Where runners may run: the runner nodes, or, with runner groups (placed by their
        # own constraints), every node.
        constraints=() if config.runner_groups else config.constraint("runner", "true"),
        stop_grace_s=10.0,
    )


# Where a notifier serves /metrics (its purger's figures); nothing publishes it.
NOTIFIER_METRICS_PORT = 9102


def _notifier(config: StackConfig) -> Service:
    # Also the scheduler (core/scheduler.py): schedules have no service of their own, and
    # it needs the queue Redis (HOMERUN_QUEUE_REDIS_URL, on "data") for the ticks' tasks
    # and the API's validator settings for their jobs.
    return Service(
        **_common(config, "notifier"),
        image=config.image("app"),
        command=("homerun", "notifier"),
        env={
            **_app_env(config),
            **_validator_env(config),
            # Also the purger (notifier/retention.py); its figures on /metrics, inside
            # the "data" network only.
            "HOMERUN_RETENTION_SECONDS": str(config.retention_seconds),
            "HOMERUN_RETENTION_POLL_SECONDS": str(config.retention_poll_seconds),
            "HOMERUN_NOTIFIER_METRICS_PORT": str(NOTIFIER_METRICS_PORT),
        },
        # "public" is its route out to webhook receivers; nothing of it is published.
        networks=("data", "public"),
        replicas=config.notifier_replicas,
        secrets=_app_secrets(),
        healthcheck=_APP_HEALTHCHECK,
    )


def _edge_healthcheck(config: StackConfig) -> Healthcheck:
    """HAProxy answers on its own port, and, with host-mode ports, the published port
    answers too.

    The second half is reached through the container's default gateway (the node, over
    docker_gwbridge), so it goes through the node's own forwarder for the published port,
    the userland docker-proxy: one client holding thousands of connections once made that
    forwarder exit, and the port stayed refused while a check of HAProxy's own port stayed
    green. Unhealthy, the task is replaced, and its replacement gets a new forwarder. The
    gateway is read from /proc/net/route (the image has no iproute2). Off with
    ``edge_checks_published_port`` on a node whose firewall refuses containers the host.
    """
    probe = "printf 'GET /edge-healthz HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q ' 200 ' <&3"
    script = f"exec 3<>/dev/tcp/127.0.0.1/{APP_PORT} && {probe}"
    if config.publish_mode is PublishMode.HOST and config.edge_checks_published_port:
        script += (
            ' && exec 3>&- && while read -r _ dest gw _; do [ "$dest" = 00000000 ] && break;'
            " done </proc/net/route && gw=$((16#${gw:6:2})).$((16#${gw:4:2}))"
            ".$((16#${gw:2:2})).$((16#${gw:0:2}))"
            f" && exec 3<>/dev/tcp/$gw/{config.api_port} && {probe}"
        )
    return Healthcheck(test=("CMD", "bash", "-c", script))


def _edge(config: StackConfig) -> Service:
    return Service(
        **_common(config, "edge"),
        image=config.image("edge"),
        command=("haproxy", "-W", "-db", "-f", EDGE_CONF),
        env={},
        networks=("public",),
        # One per node: a host-mode port can be bound once per node, and every node answers.
        replicas=None,
        configs=(ConfigRef("edge-conf", EDGE_CONF),),
        ports=(Port(APP_PORT, config.api_port, config.publish_mode),),
        healthcheck=_edge_healthcheck(config),
        stop_grace_s=10.0,
    )


# --------------------------------------------------------------------------- registry


def _registry_part(config: StackConfig) -> Topology:
    """The stack's own registry: its network, volume, proxy config and services."""
    s = config.stack
    # Not internal: a published port needs the network's gateway.
    networks = (
        Network("registry", f"{s}_registry", internal=False, encrypted=config.encrypt_networks),
    )
    volumes = (Volume("registry", f"{s}_registry"),)
    configs: tuple[Config, ...] = ()
    services = [_registry(config)]
    if config.publish_mode is PublishMode.HOST:
        configs = (
            _config(
                s,
                "registry-proxy-conf",
                conffiles.registry_proxy_cfg(
                    listen_port=REGISTRY_PORT, backend_host="registry", backend_port=REGISTRY_PORT
                ),
            ),
        )
        services.append(_registry_proxy(config))
    return Topology(s, networks, (), configs, volumes, tuple(services))


def _registry(config: StackConfig) -> Service:
    # With the routing mesh every node answers on the published port; with host-mode ports
    # registry-proxy publishes it on every node instead.
    ingress = config.publish_mode is PublishMode.INGRESS
    return Service(
        **_common(config, "registry"),
        image=config.registry_image,
        command=(),
        # Published on every node: without a password anyone who reaches a node could pull
        # the runner's image or push over it. Every request needs user REGISTRY_USER's
        # password (htpasswd, bcrypt); deletes stay off (the pushes are kept remotely, and
        # nothing of homerun deletes from it).
        env={
            "REGISTRY_AUTH": "htpasswd",
            "REGISTRY_AUTH_HTPASSWD_REALM": f"homerun {config.stack}",
            "REGISTRY_AUTH_HTPASSWD_PATH": _secret("registry-htpasswd", 0).path,
            # The health check asks the debug listener, which needs no password and is
            # only on the container's loopback.
            "REGISTRY_HTTP_DEBUG_ADDR": f"127.0.0.1:{REGISTRY_DEBUG_PORT}",
        },
        networks=("registry",),
        replicas=1,
        secrets=(_secret("registry-htpasswd", 0),),
        mounts=(Mount("volume", "registry", REGISTRY_DATA),),
        ports=(Port(REGISTRY_PORT, config.registry_port, PublishMode.INGRESS),) if ingress else (),
        # registry:2 is Alpine: busybox wget is its only HTTP client.
        healthcheck=Healthcheck(
            test=(
                "CMD",
                "wget",
                "-q",
                "-O",
                "/dev/null",
                f"http://127.0.0.1:{REGISTRY_DEBUG_PORT}/debug/health",
            )
        ),
        constraints=config.constraint("registry", "true"),
    )


def _registry_proxy(config: StackConfig) -> Service:
    return Service(
        **_common(config, "registry-proxy"),
        image=config.registry_proxy_image,
        command=("haproxy", "-W", "-db", "-f", EDGE_CONF),
        env={},
        networks=("registry",),
        # One per node: every node's engine pulls from its own 127.0.0.1.
        replicas=None,
        configs=(ConfigRef("registry-proxy-conf", EDGE_CONF),),
        ports=(Port(REGISTRY_PORT, config.registry_port, PublishMode.HOST),),
        healthcheck=Healthcheck(
            test=("CMD", "bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{REGISTRY_PORT}"),
        ),
    )


# --------------------------------------------------------------------------- egress

EGRESS_CONF = "/etc/squid/squid.conf"
EGRESS_KEY = "egress-proxy-key"


def _egress_secrets(config: StackConfig) -> tuple[SecretRef, ...]:
    """The runner's share of the gate: the key it signs proxy credentials with (only
    ``egress-proxy`` and the runners mount it)."""
    return (_secret(EGRESS_KEY),) if config.egress else ()


def _egress_part(config: StackConfig) -> Topology:
    """Network egress: the internal network tasks join, the routed one, and the proxy."""
    s = config.stack
    networks = (
        # Internal: no route out but through egress-proxy; attachable for task containers.
        Network("egress", f"{s}_egress", internal=True, encrypted=config.encrypt_networks),
        Network("egress-out", f"{s}_egress-out", internal=False, encrypted=config.encrypt_networks),
    )
    conf = egress.squid_conf(
        egress.parse_allow_list(config.egress_allow),
        extra_denied=egress.parse_networks(config.egress_denied_networks),
        gate=egress.Gate(key_file=_secret(EGRESS_KEY, PROXY_UID).path),
    )
    configs = (_config(s, "egress-proxy-conf", conf),)
    proxy = Service(
        **_common(config, "egress-proxy"),
        image=config.image("egress-proxy"),
        command=("squid", "-N", "-f", EGRESS_CONF),
        env={},
        networks=("egress", "egress-out"),
        replicas=1,
        configs=(ConfigRef("egress-proxy-conf", EGRESS_CONF),),
        # Read by the gate's helpers, which run as squid's proxy user.
        secrets=(_secret(EGRESS_KEY, PROXY_UID),),
        healthcheck=Healthcheck(
            test=("CMD", "bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{egress.PROXY_PORT}"),
        ),
        stop_grace_s=5.0,
    )
    return Topology(s, networks, (), configs, (), (proxy,))
