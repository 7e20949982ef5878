"""Pulumi config -> ``StackConfig`` and the secret values. Every key is documented, with its
default, in the root ``Pulumi.yaml``; the defaults here are the same ones.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pulumi

from stack import secretfiles
from stack.model import EndpointMode, PublishMode, Resources
from stack.modes import detect_modes
from stack.topology import (
    DEFAULT_TAG,
    DERIVED_SECRET_KEYS,
    REGISTRY_USER,
    SECRET_KEYS,
    RunnerGroup,
    StackConfig,
    build_topology,
    parse_resources,
    parse_runner_groups,
)

# Pulumi config key of each secret (camelCase, like every other key).
SECRET_CONFIG_KEYS = {
    "db-password": "dbPassword",
    "replication-password": "replicationPassword",
    "admin-token": "adminToken",
    "redis-password": "redisPassword",
    "secrets-keyring": "secretsKeyring",
    "ui-session-key": "uiSessionKey",
    "registry-password": "runRegistryPassword",
    "egress-proxy-key": "egressProxyKey",
}


@dataclass(frozen=True)
class Deployment:
    stack: StackConfig
    # Secret key -> base64 of its value, always wrapped as a Pulumi secret.
    secrets: Mapping[str, pulumi.Output[str]]
    # Secret key -> its Swarm name, derived from the value (stack.secretfiles.named).
    secret_names: Mapping[str, str] = field(default_factory=dict)
    # Credentials for the image registry (registry, registryUsername/registryPassword or
    # HOMERUN_REGISTRY_USERNAME/HOMERUN_REGISTRY_PASSWORD); None: pull anonymously.
    registry_auth: RegistryAuth | None = None


@dataclass(frozen=True)
class RegistryAuth:
    address: str
    username: str
    password: pulumi.Output[str]


def read(cfg: pulumi.Config) -> Deployment:
    d = StackConfig()
    endpoint, publish = _modes(
        cfg.get("endpointMode") or EndpointMode.VIP.value,
        cfg.get("publishMode") or PublishMode.INGRESS.value,
    )
    stack = StackConfig(
        stack=cfg.get("stackName") or d.stack,
        registry=cfg.get("registry") or d.registry,
        tag=cfg.get("tag") or DEFAULT_TAG,
        api_replicas=_int(cfg, "apiReplicas", d.api_replicas),
        runner_replicas=_int(cfg, "runnerReplicas", d.runner_replicas),
        notifier_replicas=_int(cfg, "notifierReplicas", d.notifier_replicas),
        api_port=_int(cfg, "apiPort", d.api_port),
        endpoint_mode=endpoint,
        publish_mode=publish,
        encrypt_networks=_bool(cfg, "encryptNetworks", d.encrypt_networks),
        placement_labels=_bool(cfg, "placementLabels", d.placement_labels),
        label_prefix=cfg.get("labelPrefix") or d.label_prefix,
        runner_concurrency=_int(cfg, "runnerConcurrency", d.runner_concurrency),
        max_running_per_token=_cap(cfg.get("maxRunningPerToken") or "auto"),
        allowed_images=tuple(_strings(cfg, "allowedImages")),
        edge_connections_per_source=_int(
            cfg, "edgeConnectionsPerSource", d.edge_connections_per_source
        ),
        edge_checks_published_port=_bool(
            cfg, "edgeChecksPublishedPort", d.edge_checks_published_port
        ),
        resources=_resources(cfg),
        docker_socket=cfg.get("dockerSocket") or d.docker_socket,
        run_registry=_bool(cfg, "runRegistry", d.run_registry),
        registry_port=_int(cfg, "registryPort", d.registry_port),
        registry_image=cfg.get("registryImage") or d.registry_image,
        registry_proxy_image=cfg.get("registryProxyImage") or d.registry_proxy_image,
        runner_groups=_runner_groups(cfg),
        retention_seconds=_int(cfg, "retentionSeconds", d.retention_seconds),
        retention_poll_seconds=_int(cfg, "retentionPollSeconds", d.retention_poll_seconds),
        max_map_items=_int(cfg, "maxMapItems", d.max_map_items),
        artifacts_max_files=_int(cfg, "artifactsMaxFiles", d.artifacts_max_files),
        artifacts_max_bytes=_int(cfg, "artifactsMaxBytes", d.artifacts_max_bytes),
        egress=_bool(cfg, "egress", d.egress),
        egress_allow=tuple(_strings(cfg, "egressAllow")),
        egress_denied_networks=tuple(_strings(cfg, "egressDeniedNetworks")),
        task_runtime=cfg.get("taskRuntime") or d.task_runtime,
    )
    secrets_dir = Path(cfg.get("secretsDir") or secretfiles.default_dir(stack.stack))
    needed = {s.key for s in build_topology(stack).secrets}
    values = _secret_values(cfg, secrets_dir, needed)
    return Deployment(
        stack,
        {key: pulumi.Output.secret(_b64(value)) for key, value in values.items()},
        _secret_names(cfg, secrets_dir, stack, values),
        _registry_auth(cfg, stack, values),
    )


def _modes(endpoint: str, publish: str) -> tuple[EndpointMode, PublishMode]:
    # "auto" asks this machine (a Swarm manager, where `pulumi up` runs) whether it has IPVS.
    detected = detect_modes() if "auto" in (endpoint, publish) else None
    e = detected[0] if endpoint == "auto" and detected else EndpointMode(endpoint)
    p = detected[1] if publish == "auto" and detected else PublishMode(publish)
    return e, p


def _cap(value: str) -> int | None:
    """maxRunningPerToken: a number, or ``auto`` (None: StackConfig.running_cap, one less
    than all the runners' slots)."""
    if value == "auto":
        return None
    try:
        return int(value)
    except ValueError:
        raise pulumi.RunError(
            f"config maxRunningPerToken: {value!r} is neither a number nor auto"
        ) from None


def _int(cfg: pulumi.Config, key: str, default: int) -> int:
    value = cfg.get_int(key)
    return default if value is None else value


def _bool(cfg: pulumi.Config, key: str, default: bool) -> bool:
    value = cfg.get_bool(key)
    return default if value is None else value


def _strings(cfg: pulumi.Config, key: str) -> list[str]:
    value = cfg.get_object(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise pulumi.RunError(f"config {key} must be a list of strings, got {value!r}")
    return [v for v in value if v]


def _resources(cfg: pulumi.Config) -> dict[str, Resources]:
    try:
        return parse_resources(_strings(cfg, "resources"))
    except ValueError as exc:
        raise pulumi.RunError(f"config resources: {exc}") from None


def _runner_groups(cfg: pulumi.Config) -> tuple[RunnerGroup, ...]:
    try:
        return parse_runner_groups(_strings(cfg, "runnerGroups"))
    except (ValueError, TypeError) as exc:
        raise pulumi.RunError(f"config runnerGroups: {exc}") from None


def _secret_values(cfg: pulumi.Config, directory: Path, needed: Iterable[str]) -> dict[str, str]:
    """The ``needed`` secrets' values: a config secret wins; otherwise the file the compose
    CLI (or `make up`) generated; a derived one from its source. Plain text here only to
    derive the names; it leaves this module as a Pulumi secret."""
    from_files = secretfiles.read(directory)
    wanted = set(needed)
    # A derived secret needs its source (and nothing configures it directly).
    wanted |= {DERIVED_SECRET_KEYS[k][0] for k in wanted if k in DERIVED_SECRET_KEYS}
    out: dict[str, str] = {}
    for key, config_key in SECRET_CONFIG_KEYS.items():
        if key not in wanted:
            continue
        # get() not get_secret(): an empty default must read as "unset", and the value is
        # wrapped as a secret by read() whichever way it came.
        plain = cfg.get(config_key)
        if plain:
            out[key] = plain
        else:
            if key not in from_files:
                raise pulumi.RunError(
                    f"no value for {SECRET_KEYS[key]}: `pulumi config set --secret {config_key} "
                    f"...` or put it in {directory / key}"
                )
            out[key] = from_files[key]
    return {k: v for k, v in secretfiles.with_derived(out).items() if k in wanted}


def _secret_names(
    cfg: pulumi.Config, directory: Path, stack: StackConfig, values: Mapping[str, str]
) -> dict[str, str]:
    plain = cfg.get("secretNamingKey")
    key = secretfiles.normalize(plain) if plain else secretfiles.read_naming_key(directory)
    if not key:
        raise pulumi.RunError(
            "no key to name the secrets with: `pulumi config set --secret secretNamingKey "
            f"...` or put it in {directory / secretfiles.NAMING_KEY} (make up generates it)"
        )
    topology = build_topology(stack)
    return {s.key: s.name for s in secretfiles.named(topology, values, key).secrets}


def _registry_auth(
    cfg: pulumi.Config, stack: StackConfig, secrets: Mapping[str, str]
) -> RegistryAuth | None:
    """Credentials for the registry the images come from: the stack's own registry's from
    its secret; for ``registry``, Pulumi config first, then the environment the compose path
    reads too."""
    if stack.run_registry:
        return RegistryAuth(
            stack.image_registry,
            REGISTRY_USER,
            pulumi.Output.secret(secretfiles.normalize(secrets["registry-password"]).decode()),
        )
    username = cfg.get("registryUsername") or os.environ.get("HOMERUN_REGISTRY_USERNAME", "")
    password = cfg.get("registryPassword") or os.environ.get("HOMERUN_REGISTRY_PASSWORD", "")
    if not (stack.registry and username):
        return None
    return RegistryAuth(stack.registry, username, pulumi.Output.secret(password))


def _b64(value: str) -> str:
    # pulumi-docker takes a secret's data base64-encoded; the bytes are the ones compose
    # stores too (secretfiles.normalize).
    return base64.b64encode(secretfiles.normalize(value)).decode()
