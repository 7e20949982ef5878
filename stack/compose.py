"""Render the topology as a compose file for ``docker stack deploy``: the deployer for hosts
without Pulumi, and the one the end-to-end tests use.

    python -m stack.compose --stack homerun --auto-modes > compose.yml
    docker stack deploy --prune -c compose.yml homerun

With ``--run-registry`` the stack runs its own registry; ``--registry-only`` renders just that
part (its network, volume, config and services), to deploy it under the same stack name, push
the images into it, then deploy the whole file, in which the part is rendered identically.

Every top-level object carries an explicit ``name:`` (``<stack>_<key>``), so Swarm names are
the ones the Pulumi program creates too; services become ``<stack>_<key>`` by Docker's rule.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from core.settings import TASK_RUNTIMES
from stack import secretfiles
from stack.model import (
    EndpointMode,
    Healthcheck,
    PublishMode,
    Resources,
    Service,
    Topology,
    UpdatePolicy,
    duration,
)
from stack.modes import detect_modes
from stack.topology import (
    DEFAULT_TAG,
    IMAGE_NAMES,
    REGISTRY_SERVICE_KEYS,
    RunnerGroup,
    StackConfig,
    build_topology,
    parse_resource,
    parse_runner_group,
)

__all__ = ["detect_modes", "main", "render", "render_yaml", "write_configs"]

COMPOSE_VERSION = "3.8"


def render(
    topology: Topology,
    secret_files: Mapping[str, Path],
    config_files: Mapping[str, Path],
) -> dict[str, Any]:
    """The compose document. Secret and config contents stay in files; only paths appear."""
    document = {
        "version": COMPOSE_VERSION,
        "services": {svc.key: _service(svc) for svc in topology.services},
        "networks": {
            n.key: {
                "name": n.name,
                "driver": n.driver,
                "attachable": n.attachable,
                "internal": n.internal,
                **({"driver_opts": {"encrypted": ""}} if n.encrypted else {}),
                "labels": n.labels,
            }
            for n in topology.networks
        },
        "volumes": {v.key: {"name": v.name} for v in topology.volumes},
        "secrets": {
            s.key: {"name": s.name, "file": str(secret_files[s.key])} for s in topology.secrets
        },
        "configs": {
            c.key: {"name": c.name, "file": str(config_files[c.key])} for c in topology.configs
        },
    }
    # A part of the stack (--registry-only) has no secrets: leave out what would be empty.
    return {key: value for key, value in document.items() if value}


def render_yaml(document: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(document), sort_keys=False, default_flow_style=False, width=1000)


def write_secret_data(
    topology: Topology, values: Mapping[str, Path], directory: Path
) -> dict[str, Path]:
    """A copy of each secret's bytes as both renderings store them (secretfiles.normalize),
    named like the Swarm secret; ``docker stack deploy`` reads a secret's file verbatim."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths: dict[str, Path] = {}
    for secret in topology.secrets:
        data = secretfiles.normalize(values[secret.key].read_bytes())
        path = directory / secret.name
        if not path.exists() or path.read_bytes() != data:
            path.touch(mode=0o600)
            path.write_bytes(data)
        paths[secret.key] = path.resolve()
    return paths


def named_secrets(topology: Topology, files: Mapping[str, Path], naming_key: bytes) -> Topology:
    """The topology with its secrets named after the files' contents."""
    values = {key: path.read_bytes() for key, path in files.items()}
    return secretfiles.named(topology, values, naming_key)


def pin_images(topology: Topology, config: StackConfig) -> dict[str, str]:
    """Image -> what the compose file names instead: as stack.components.pins does, each
    local homerun image by its ID on this engine (Swarm neither resolves nor pulls an image
    named so), each image of a registry by ``name@digest`` when this engine has pulled it."""
    import docker
    from docker.errors import ImageNotFound

    client = docker.from_env(timeout=30)
    own = {config.image(name) for name in IMAGE_NAMES}
    out: dict[str, str] = {}
    try:
        for image in {svc.image for svc in topology.services}:
            try:
                attrs = client.images.get(image).attrs
            except ImageNotFound:
                continue
            if not config.image_registry and image in own:
                out[image] = str(attrs["Id"])
                continue
            repo = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
            for digest in attrs.get("RepoDigests") or ():
                if digest.split("@", 1)[0] in (repo, f"docker.io/library/{repo}"):
                    out[image] = f"{image}@{digest.split('@', 1)[1]}"
    finally:
        client.close()
    return out


def with_images(topology: Topology, images: Mapping[str, str]) -> Topology:
    return replace(
        topology,
        services=tuple(
            replace(svc, image=images.get(svc.image, svc.image)) for svc in topology.services
        ),
    )


def write_configs(topology: Topology, directory: Path) -> dict[str, Path]:
    """Write each config's contents to ``directory/<config name>``; unchanged files stay."""
    directory.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for config in topology.configs:
        path = directory / config.name
        if not path.exists() or path.read_text() != config.data:
            path.write_text(config.data)
        paths[config.key] = path.resolve()
    return paths


def _escape(value: str) -> str:
    # Compose interpolates ${VAR}; every literal dollar must reach the container unchanged.
    return value.replace("$", "$$")


def _service(svc: Service) -> dict[str, Any]:
    out: dict[str, Any] = {"image": svc.image}
    if svc.command:
        out["command"] = [_escape(a) for a in svc.command]
    if svc.env:
        out["environment"] = {k: _escape(v) for k, v in svc.env.items()}
    # docker stack deploy already aliases each service by its key on every network.
    extra = [a for a in svc.aliases if a != svc.key]
    out["networks"] = {net: {"aliases": extra} if extra else None for net in svc.networks}
    if svc.secrets:
        out["secrets"] = [
            {
                "source": r.secret,
                "target": r.target,
                "uid": str(r.uid),
                "gid": str(r.gid),
                "mode": r.mode,
            }
            for r in svc.secrets
        ]
    if svc.configs:
        out["configs"] = [
            {"source": r.config, "target": r.target, "mode": r.mode} for r in svc.configs
        ]
    if svc.mounts:
        out["volumes"] = [
            {"type": m.type, "source": m.source, "target": m.target, "read_only": m.read_only}
            for m in svc.mounts
        ]
    if svc.ports:
        out["ports"] = [
            {
                "target": p.target,
                "published": p.published,
                "protocol": p.protocol,
                "mode": p.mode.value,
            }
            for p in svc.ports
        ]
    if svc.user is not None:
        out["user"] = svc.user
    out["healthcheck"] = _healthcheck(svc.healthcheck)
    out["stop_grace_period"] = duration(svc.stop_grace_s)
    out["deploy"] = _deploy(svc)
    return out


def _healthcheck(h: Healthcheck) -> dict[str, Any]:
    return {
        "test": [_escape(t) for t in h.test],
        "interval": duration(h.interval_s),
        "timeout": duration(h.timeout_s),
        "retries": h.retries,
        "start_period": duration(h.start_period_s),
    }


def _deploy(svc: Service) -> dict[str, Any]:
    deploy: dict[str, Any] = {}
    if svc.replicas is None:
        deploy["mode"] = "global"
    else:
        deploy["mode"] = "replicated"
        deploy["replicas"] = svc.replicas
    deploy["endpoint_mode"] = svc.endpoint_mode.value
    deploy["labels"] = dict(svc.labels)
    deploy["resources"] = _resources(svc.resources)
    restart: dict[str, Any] = {
        "condition": svc.restart.condition,
        "delay": duration(svc.restart.delay_s),
        "window": duration(svc.restart.window_s),
    }
    if svc.restart.max_attempts:
        restart["max_attempts"] = svc.restart.max_attempts
    deploy["restart_policy"] = restart
    deploy["update_config"] = _update(svc.update)
    deploy["rollback_config"] = _update(svc.rollback)
    if svc.constraints:
        deploy["placement"] = {"constraints": list(svc.constraints)}
    return deploy


def _resources(r: Resources) -> dict[str, Any]:
    return {
        "limits": {"cpus": f"{r.cpus:g}", "memory": f"{r.memory_mb}M"},
        "reservations": {"cpus": f"{r.reserve_cpus:g}", "memory": f"{r.reserve_memory_mb}M"},
    }


def _update(u: UpdatePolicy) -> dict[str, Any]:
    return {
        "parallelism": u.parallelism,
        "delay": duration(u.delay_s),
        "order": u.order,
        "failure_action": u.failure_action,
        "monitor": duration(u.monitor_s),
        "max_failure_ratio": u.max_failure_ratio,
    }


# --------------------------------------------------------------------------- CLI


def _resource_override(text: str) -> tuple[str, Resources]:
    try:
        return parse_resource(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _runner_group(text: str) -> RunnerGroup:
    try:
        return parse_runner_group(text)
    except (ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    d = StackConfig()
    p = argparse.ArgumentParser(
        prog="python -m stack.compose",
        description="Print the homerun stack as a compose file for `docker stack deploy`.",
    )
    p.add_argument("--stack", default=d.stack, help="stack name, prefix of every object")
    p.add_argument("--registry", default=d.registry, help="registry host[:port] for images")
    p.add_argument(
        "--run-registry",
        action="store_true",
        help="run a registry on the Swarm and take the images from 127.0.0.1:<registry-port> "
        "(instead of --registry)",
    )
    p.add_argument(
        "--registry-port",
        type=int,
        default=d.registry_port,
        help="the registry's port on every node",
    )
    p.add_argument("--registry-image", default=d.registry_image, help="image of the registry")
    p.add_argument(
        "--registry-proxy-image",
        default=d.registry_proxy_image,
        help="image of registry-proxy (HAProxy; used with host-mode ports)",
    )
    p.add_argument(
        "--registry-only",
        action="store_true",
        help="with --run-registry: render only the registry's part of the stack, to deploy "
        "and fill before the rest",
    )
    p.add_argument("--tag", default=DEFAULT_TAG, help="image tag")
    p.add_argument("--api-replicas", type=int, default=d.api_replicas)
    p.add_argument("--runner-replicas", type=int, default=d.runner_replicas)
    p.add_argument("--notifier-replicas", type=int, default=d.notifier_replicas)
    p.add_argument("--port", type=int, default=d.api_port, help="published API port")
    p.add_argument("--endpoint-mode", choices=[m.value for m in EndpointMode])
    p.add_argument("--publish-mode", choices=[m.value for m in PublishMode])
    p.add_argument(
        "--auto-modes",
        action="store_true",
        help="pick dnsrr/host when this host has no IPVS, vip/ingress otherwise "
        "(explicit --endpoint-mode/--publish-mode still win)",
    )
    p.add_argument(
        "--print-modes",
        action="store_true",
        help="print the detected '<endpoint-mode> <publish-mode>' and exit",
    )
    p.add_argument("--encrypt-networks", action="store_true", help="IPsec on the overlays")
    p.add_argument(
        "--placement-labels",
        action="store_true",
        help="constrain services to nodes labelled homerun.postgres=primary|replica, "
        "homerun.redis=true, homerun.runner=true (and homerun.registry=true)",
    )
    p.add_argument(
        "--label-prefix", default=d.label_prefix, help="prefix of node and service labels"
    )
    p.add_argument("--runner-concurrency", type=int, default=d.runner_concurrency)
    p.add_argument(
        "--max-running-per-token",
        type=int,
        default=d.max_running_per_token,
        help="tasks one API token may run at once over all runners (0: no cap;"
        " default: one less than all the runners' slots)",
    )
    p.add_argument(
        "--allowed-images", default="", help="comma-separated images container tasks may use"
    )
    p.add_argument(
        "--edge-connections-per-source",
        type=int,
        default=d.edge_connections_per_source,
        help="connections one client address may hold open at the edge",
    )
    p.add_argument(
        "--no-edge-port-check",
        dest="edge_checks_published_port",
        action="store_false",
        help="the edge's health check asks only HAProxy, not the published port through the node",
    )
    p.add_argument(
        "--retention-seconds",
        type=int,
        default=d.retention_seconds,
        help="finished jobs older than this are deleted (0: kept forever)",
    )
    p.add_argument(
        "--retention-poll-seconds",
        type=int,
        default=d.retention_poll_seconds,
        help="how often each notifier looks for expired jobs",
    )
    p.add_argument(
        "--artifacts-max-files",
        type=int,
        default=d.artifacts_max_files,
        help="entries one task may leave under /homerun/artifacts (the runners check it)",
    )
    p.add_argument(
        "--artifacts-max-bytes",
        type=int,
        default=d.artifacts_max_bytes,
        help="bytes one task may leave under /homerun/artifacts",
    )
    p.add_argument(
        "--max-map-items",
        type=int,
        default=d.max_map_items,
        help="items one map task may fan out over (the API and the scheduler check it)",
    )
    p.add_argument(
        "--resources",
        type=_resource_override,
        action="append",
        default=[],
        metavar="SERVICE=CPUS,MB[,RCPUS,RMB]",
        help="override one service's limits (repeatable)",
    )
    p.add_argument(
        "--runner-group",
        type=_runner_group,
        action="append",
        default=[],
        metavar="NAME:replicas=N,concurrency=N,labels=a+b,constraint=EXPR",
        help="one more runner service, runner-NAME, claiming tasks whose runs_on its labels"
        " cover (repeatable)",
    )
    p.add_argument(
        "--docker-socket",
        default=d.docker_socket,
        help="host path of the engine's socket, mounted into docker-guard only",
    )
    p.add_argument(
        "--egress",
        action="store_true",
        help="let tasks that ask for it reach --egress-allow's hosts through egress-proxy",
    )
    p.add_argument(
        "--egress-allow",
        default="",
        help="comma-separated allow-list: host, host:port, *.domain[:port]",
    )
    p.add_argument(
        "--egress-denied-networks",
        default="",
        help="comma-separated CIDRs the proxy refuses too (the hosts' public addresses)",
    )
    p.add_argument(
        "--task-runtime",
        choices=TASK_RUNTIMES,
        default=d.task_runtime,
        help="task containers' OCI runtime: runc, runsc (gVisor), auto (runsc where registered)",
    )
    p.add_argument("--secrets-dir", type=Path, help="default .homerun/stacks/<stack>/secrets")
    p.add_argument(
        "--no-generate-secrets",
        action="store_true",
        help="fail instead of generating missing secret files",
    )
    p.add_argument("--config-dir", type=Path, help="default .homerun/stacks/<stack>/configs")
    p.add_argument(
        "--pin-images",
        action="store_true",
        help="name each image by what this engine has: a local homerun image by its ID, a "
        "registry's image by its digest (asks the engine, never a registry)",
    )
    p.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    return p


def config_from_args(args: argparse.Namespace) -> StackConfig:
    endpoint, publish = EndpointMode.VIP, PublishMode.INGRESS
    if args.auto_modes:
        endpoint, publish = detect_modes()
    if args.endpoint_mode:
        endpoint = EndpointMode(args.endpoint_mode)
    if args.publish_mode:
        publish = PublishMode(args.publish_mode)
    return StackConfig(
        stack=args.stack,
        registry=args.registry,
        tag=args.tag,
        api_replicas=args.api_replicas,
        runner_replicas=args.runner_replicas,
        notifier_replicas=args.notifier_replicas,
        api_port=args.port,
        endpoint_mode=endpoint,
        publish_mode=publish,
        encrypt_networks=args.encrypt_networks,
        placement_labels=args.placement_labels,
        label_prefix=args.label_prefix,
        runner_concurrency=args.runner_concurrency,
        max_running_per_token=args.max_running_per_token,
        allowed_images=tuple(i.strip() for i in args.allowed_images.split(",") if i.strip()),
        edge_connections_per_source=args.edge_connections_per_source,
        edge_checks_published_port=args.edge_checks_published_port,
        resources=dict(args.resources),
        docker_socket=args.docker_socket,
        run_registry=args.run_registry,
        registry_port=args.registry_port,
        registry_image=args.registry_image,
        retention_seconds=args.retention_seconds,
        retention_poll_seconds=args.retention_poll_seconds,
        max_map_items=args.max_map_items,
        artifacts_max_files=args.artifacts_max_files,
        artifacts_max_bytes=args.artifacts_max_bytes,
        registry_proxy_image=args.registry_proxy_image,
        runner_groups=tuple(args.runner_group),
        egress=args.egress,
        egress_allow=tuple(i.strip() for i in args.egress_allow.split(",") if i.strip()),
        task_runtime=args.task_runtime,
        egress_denied_networks=tuple(
            i.strip() for i in args.egress_denied_networks.split(",") if i.strip()
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.print_modes:
        endpoint, publish = detect_modes()
        print(f"{endpoint.value} {publish.value}")
        return 0
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    if args.registry_only and not config.run_registry:
        parser.error("--registry-only needs --run-registry")
    topology = build_topology(config)
    if args.registry_only:
        topology = topology.only(s.key for s in topology.services if s.key in REGISTRY_SERVICE_KEYS)
    state = Path(".homerun") / "stacks" / config.stack
    secret_files: dict[str, Path] = {}
    secrets_dir = args.secrets_dir or secretfiles.default_dir(config.stack)
    try:
        if topology.secrets:
            secret_files = secretfiles.ensure(secrets_dir, generate=not args.no_generate_secrets)
    except FileNotFoundError as exc:
        print(f"stack.compose: {exc}", file=sys.stderr)
        return 1
    if topology.secrets:
        naming_key = secretfiles.read_naming_key(secrets_dir)
        assert naming_key is not None  # ensure() made or found it
        topology = named_secrets(topology, secret_files, naming_key)
        secret_files = write_secret_data(topology, secret_files, state / "secret-data")
    if args.pin_images:
        topology = with_images(topology, pin_images(topology, config))
    config_files = write_configs(topology, args.config_dir or state / "configs")
    text = render_yaml(render(topology, secret_files, config_files))
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    part = " (registry only)" if args.registry_only else ""
    print(
        f"stack.compose: stack {config.stack}{part}: endpoint_mode={config.endpoint_mode.value} "
        f"publish_mode={config.publish_mode.value}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
