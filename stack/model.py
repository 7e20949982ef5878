"""The vocabulary of a homerun deployment: plain, frozen dataclasses and no Pulumi.

``stack.topology.build_topology`` fills these in once; ``stack.compose`` and the Pulumi
components under ``stack.components`` only translate them, so both renderings describe the
same Swarm objects by construction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TypeVar

# Secrets are mounted here by Swarm; a relative ``target`` lands in this directory.
SECRETS_DIR = "/run/secrets"
NETWORK_ENCRYPTED_LABEL = "homerun.network.encrypted"


class EndpointMode(StrEnum):
    VIP = "vip"  # a virtual IP load-balanced by IPVS: the Swarm default
    DNSRR = "dnsrr"  # DNS answers with every task's address; works without IPVS


class PublishMode(StrEnum):
    INGRESS = "ingress"  # the routing mesh: any node answers on the port (needs IPVS)
    HOST = "host"  # the port is bound on the node that runs the task


@dataclass(frozen=True)
class Resources:
    """Limits and reservations of one task. Memory in MiB (Docker's ``M``)."""

    cpus: float
    memory_mb: int
    reserve_cpus: float
    reserve_memory_mb: int

    def __post_init__(self) -> None:
        if self.cpus <= 0 or self.memory_mb <= 0:
            raise ValueError(f"limits must be positive, got {self}")
        if self.reserve_cpus > self.cpus or self.reserve_memory_mb > self.memory_mb:
            raise ValueError(f"a reservation exceeds its limit: {self}")


@dataclass(frozen=True)
class Network:
    key: str  # what services refer to
    name: str  # the Swarm object's name; carries the stack name
    internal: bool  # no route out of the overlay
    encrypted: bool  # IPsec between nodes
    attachable: bool = True  # tests and operators may attach a container to look inside
    driver: str = "overlay"

    @property
    def labels(self) -> dict[str, str]:
        # Encryption as a label too: the engine's `options` never settle (it adds its own),
        # so Pulumi ignores them after creation, and a change of encryption is this label's
        # change, which replaces the network (stack.components.converge).
        return {NETWORK_ENCRYPTED_LABEL: "true" if self.encrypted else "false"}


@dataclass(frozen=True)
class Secret:
    key: str
    name: str


@dataclass(frozen=True)
class Config:
    key: str
    name: str  # ends in a content hash: Swarm configs are immutable, a change is a new config
    data: str


@dataclass(frozen=True)
class Volume:
    key: str
    name: str


@dataclass(frozen=True)
class SecretRef:
    secret: str  # Secret.key
    target: str  # file name under /run/secrets
    mode: int = 0o400
    # Owner of the file in the container: the service's own user, so mode 0400 can stay.
    uid: int = 0
    gid: int = 0

    @property
    def path(self) -> str:
        return f"{SECRETS_DIR}/{self.target}"


@dataclass(frozen=True)
class ConfigRef:
    config: str  # Config.key
    target: str  # absolute path in the container
    mode: int = 0o444


@dataclass(frozen=True)
class Mount:
    type: str  # "volume" (source is a Volume.key) or "bind" (source is a host path)
    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class Port:
    target: int
    published: int
    mode: PublishMode
    protocol: str = "tcp"


@dataclass(frozen=True)
class Healthcheck:
    test: tuple[str, ...]  # Docker form: ("CMD", argv...) or ("CMD-SHELL", "script")
    interval_s: float = 5.0
    timeout_s: float = 3.0
    retries: int = 5
    start_period_s: float = 10.0


@dataclass(frozen=True)
class RestartPolicy:
    condition: str = "any"
    delay_s: float = 5.0
    max_attempts: int = 0  # 0: keep trying; a data service must come back by itself
    window_s: float = 30.0


@dataclass(frozen=True)
class UpdatePolicy:
    parallelism: int = 1
    delay_s: float = 2.0
    order: str = "stop-first"
    failure_action: str = "pause"
    monitor_s: float = 10.0
    max_failure_ratio: float = 0.0


@dataclass(frozen=True)
class Service:
    key: str  # the compose service key and the DNS alias other services use
    name: str  # the Swarm service name, "<stack>_<key>" in both renderings
    image: str
    command: tuple[str, ...]  # arguments (compose `command`, Swarm ContainerSpec.Args)
    env: Mapping[str, str]
    networks: tuple[str, ...]  # Network.key, each joined with the alias ``key``
    resources: Resources
    healthcheck: Healthcheck
    restart: RestartPolicy
    endpoint_mode: EndpointMode
    replicas: int | None  # None: global mode, one task per eligible node
    secrets: tuple[SecretRef, ...] = ()
    configs: tuple[ConfigRef, ...] = ()
    mounts: tuple[Mount, ...] = ()
    ports: tuple[Port, ...] = ()
    constraints: tuple[str, ...] = ()
    update: UpdatePolicy = field(default_factory=UpdatePolicy)
    rollback: UpdatePolicy = field(default_factory=UpdatePolicy)
    stop_grace_s: float = 10.0
    user: str | None = None  # None: the image's USER
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def aliases(self) -> tuple[str, ...]:
        # docker stack deploy adds the service key as an alias on every network; Pulumi is
        # told the same explicitly, so "postgres-primary" resolves in either rendering.
        return (self.key,)


@dataclass(frozen=True)
class Topology:
    stack: str
    networks: tuple[Network, ...]
    secrets: tuple[Secret, ...]
    configs: tuple[Config, ...]
    volumes: tuple[Volume, ...]
    services: tuple[Service, ...]

    def service(self, key: str) -> Service:
        for svc in self.services:
            if svc.key == key:
                return svc
        raise KeyError(key)

    def network(self, key: str) -> Network:
        return _by_key(self.networks, key)

    def secret(self, key: str) -> Secret:
        return _by_key(self.secrets, key)

    def config(self, key: str) -> Config:
        return _by_key(self.configs, key)

    def volume(self, key: str) -> Volume:
        return _by_key(self.volumes, key)

    def with_secret_names(self, names: Mapping[str, str]) -> Topology:
        """The same topology with the given secrets (by key) renamed: services refer to
        secrets by key, so they follow (stack.secretfiles.named)."""
        return replace(
            self, secrets=tuple(replace(s, name=names.get(s.key, s.name)) for s in self.secrets)
        )

    def only(self, keys: Iterable[str]) -> Topology:
        """The named services and exactly the objects they refer to, unchanged: a part of the
        stack that can be deployed first and then again, identically, with the rest."""
        services = tuple(self.service(key) for key in keys)
        networks = {n for svc in services for n in svc.networks}
        secrets = {r.secret for svc in services for r in svc.secrets}
        configs = {r.config for svc in services for r in svc.configs}
        volumes = {m.source for svc in services for m in svc.mounts if m.type == "volume"}
        return Topology(
            self.stack,
            tuple(n for n in self.networks if n.key in networks),
            tuple(s for s in self.secrets if s.key in secrets),
            tuple(c for c in self.configs if c.key in configs),
            tuple(v for v in self.volumes if v.key in volumes),
            services,
        )


_Keyed = TypeVar("_Keyed", Network, Secret, Config, Volume)


def _by_key(items: tuple[_Keyed, ...], key: str) -> _Keyed:
    for item in items:
        if item.key == key:
            return item
    raise KeyError(key)


# Swarm object names: letters, digits, '-', '_', '.'; the stack name is the namespace prefix.
_STACK_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,30}$")


def check_stack_name(name: str) -> str:
    if not _STACK_NAME.match(name):
        raise ValueError(
            f"stack name {name!r} must be 1-31 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return name


# How long a first start may spend pulling the image before the health check even begins.
PULL_ALLOWANCE_S = 300.0


def converge_timeout_s(svc: Service) -> float:
    """How long a deployment waits for ``svc`` to converge: twice its slowest first start
    (the pull, the health check's start period, then every retry failing but the last),
    in whole minutes, and never under 5 minutes. The Postgres replica's (a base backup of
    the primary within a 180 s start period) comes to 18 minutes. Both renderings wait this
    long: the provider's converge_config, and scripts/stackctl.py wait."""
    h = svc.healthcheck
    first_start = PULL_ALLOWANCE_S + h.start_period_s + h.retries * (h.interval_s + h.timeout_s)
    return max(300.0, 60.0 * -(-2 * first_start // 60))


def duration(seconds: float) -> str:
    """A duration as the Docker provider reads it back: Go's ``time.Duration.String()`` with a
    trailing ``0s`` after minutes and ``0m`` after hours dropped (kreuzwerker/terraform-provider-
    docker ``shortDur``, internal/provider/resource_docker_service_structures.go), e.g. ``10s``,
    ``1.5s``, ``250ms``, ``1m``, ``3m``, ``1m30s``, ``2h``.

    The one spelling of a duration in both renderings: the provider stores what it reads from
    Swarm in this form and has no diff suppression for durations, so ``60s`` would be a change
    on every ``pulumi up``; compose parses either.
    """
    ns = round(seconds * 1_000_000_000)
    if ns < 0:
        raise ValueError(f"a negative duration: {seconds}")
    text = _go_duration(ns)
    if text.endswith("m0s"):
        text = text[:-2]
    if text.endswith("h0m"):
        text = text[:-2]
    return text


def _go_duration(ns: int) -> str:
    """Go's ``time.Duration(ns).String()`` for ns >= 0."""
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("\u00b5s", 1_000), ("ns", 1)):
            if ns >= size:
                return _fraction(ns, size) + unit
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = _fraction(rest, 1_000_000_000) + "s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return text


def _fraction(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{frac:0{digits}d}".rstrip("0")
