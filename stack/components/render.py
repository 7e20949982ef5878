"""Translate one topology ``Service`` into pulumi-docker ``ServiceArgs``.

The Pulumi twin of ``stack.compose._service``: same fields, same values, only the shape of
the Swarm API instead of the compose file's. Components call it for each service they own.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pulumi
import pulumi_docker as docker

from stack.model import (
    Healthcheck,
    Resources,
    Service,
    Topology,
    UpdatePolicy,
    converge_timeout_s,
    duration,
)

# Docker's own stack label: `docker stack ls/services/ps/rm <stack>` find objects by it, so
# they work the same on a stack Pulumi created as on one `docker stack deploy` created.
STACK_NAMESPACE_LABEL = "com.docker.stack.namespace"
STACK_IMAGE_LABEL = "com.docker.stack.image"
_NANO = 1_000_000_000
_MIB = 1024 * 1024


@dataclass(frozen=True)
class Refs:
    """Swarm objects a service refers to, by topology key."""

    networks: Mapping[str, docker.Network]
    secrets: Mapping[str, docker.Secret]
    configs: Mapping[str, docker.ServiceConfig]
    volumes: Mapping[str, docker.Volume]
    # An image as the topology names it -> what the service runs instead: the reference
    # pinned to the digest the program pushed (stack.components.images). Unlisted images run
    # as named.
    images: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)

    def with_configs(self, configs: Mapping[str, docker.ServiceConfig]) -> Refs:
        return replace(self, configs={**self.configs, **configs})

    def with_volumes(self, volumes: Mapping[str, docker.Volume]) -> Refs:
        return replace(self, volumes={**self.volumes, **volumes})

    def with_images(self, images: Mapping[str, pulumi.Input[str]]) -> Refs:
        return replace(self, images={**self.images, **images})


def stack_labels(stack: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return {STACK_NAMESPACE_LABEL: stack, **(extra or {})}


def service_args(stack: str, svc: Service, refs: Refs) -> docker.ServiceArgs:
    image = refs.images.get(svc.image, svc.image)
    container = docker.ServiceTaskSpecContainerSpecArgs(
        image=image,
        args=list(svc.command) or None,
        env=dict(svc.env) or None,
        user=svc.user,
        healthcheck=_healthcheck(svc.healthcheck),
        secrets=[
            docker.ServiceTaskSpecContainerSpecSecretArgs(
                secret_id=refs.secrets[r.secret].id,
                secret_name=refs.secrets[r.secret].name,
                file_name=r.target,
                file_mode=r.mode,
                file_uid=str(r.uid),
                file_gid=str(r.gid),
            )
            for r in svc.secrets
        ]
        or None,
        configs=[
            docker.ServiceTaskSpecContainerSpecConfigArgs(
                config_id=refs.configs[r.config].id,
                config_name=refs.configs[r.config].name,
                file_name=r.target,
                file_mode=r.mode,
                file_uid="0",
                file_gid="0",
            )
            for r in svc.configs
        ]
        or None,
        mounts=[
            docker.ServiceTaskSpecContainerSpecMountArgs(
                type=m.type,
                # A volume is referred to by its resource's name: the dependency is explicit.
                source=refs.volumes[m.source].name if m.type == "volume" else m.source,
                target=m.target,
                read_only=m.read_only,
                # A node other than the one Pulumi talks to creates the volume when its task
                # starts: with these labels, as docker stack deploy's are.
                volume_options=docker.ServiceTaskSpecContainerSpecMountVolumeOptionsArgs(
                    labels=[
                        docker.ServiceTaskSpecContainerSpecMountVolumeOptionsLabelArgs(
                            label=k, value=v
                        )
                        for k, v in stack_labels(stack).items()
                    ]
                )
                if m.type == "volume"
                else None,
            )
            for m in svc.mounts
        ]
        or None,
        stop_grace_period=duration(svc.stop_grace_s),
        labels=[
            docker.ServiceTaskSpecContainerSpecLabelArgs(label=k, value=v)
            for k, v in stack_labels(stack).items()
        ],
    )
    task = docker.ServiceTaskSpecArgs(
        container_spec=container,
        networks_advanceds=[
            docker.ServiceTaskSpecNetworksAdvancedArgs(
                id=refs.networks[key].id, aliases=list(svc.aliases)
            )
            for key in svc.networks
        ],
        resources=_resources(svc.resources),
        restart_policy=docker.ServiceTaskSpecRestartPolicyArgs(
            condition=svc.restart.condition,
            delay=duration(svc.restart.delay_s),
            max_attempts=svc.restart.max_attempts,
            window=duration(svc.restart.window_s),
        ),
        # Always sent, constraints or not: its platforms are ignored (components.converge).
        placement=docker.ServiceTaskSpecPlacementArgs(constraints=list(svc.constraints) or None),
    )
    if svc.replicas is None:
        mode = docker.ServiceModeArgs(global_=True)
        converge = None  # the provider only waits for replicated services
    else:
        mode = docker.ServiceModeArgs(
            replicated=docker.ServiceModeReplicatedArgs(replicas=svc.replicas)
        )
        # `pulumi up` returns once every task runs (health checks passed), like a deploy script
        # waiting for the stack. The provider deletes a service that misses this on creation,
        # so it is the service's slowest first start (model.converge_timeout_s).
        converge = docker.ServiceConvergeConfigArgs(
            delay=duration(5), timeout=duration(converge_timeout_s(svc))
        )
    return docker.ServiceArgs(
        name=svc.name,
        labels=[
            docker.ServiceLabelArgs(label=k, value=v)
            for k, v in stack_labels(stack, svc.labels).items()
        ]
        # What docker stack deploy records as the image the service was asked to run.
        + [docker.ServiceLabelArgs(label=STACK_IMAGE_LABEL, value=image)],
        task_spec=task,
        mode=mode,
        endpoint_spec=docker.ServiceEndpointSpecArgs(
            mode=svc.endpoint_mode.value,
            ports=[
                docker.ServiceEndpointSpecPortArgs(
                    target_port=p.target,
                    published_port=p.published,
                    publish_mode=p.mode.value,
                    protocol=p.protocol,
                )
                for p in svc.ports
            ]
            or None,
        ),
        update_config=docker.ServiceUpdateConfigArgs(**_update_fields(svc.update)),
        rollback_config=docker.ServiceRollbackConfigArgs(**_update_fields(svc.rollback)),
        converge_config=converge,
    )


def _healthcheck(h: Healthcheck) -> docker.ServiceTaskSpecContainerSpecHealthcheckArgs:
    return docker.ServiceTaskSpecContainerSpecHealthcheckArgs(
        tests=list(h.test),
        interval=duration(h.interval_s),
        timeout=duration(h.timeout_s),
        retries=h.retries,
        start_period=duration(h.start_period_s),
    )


def _resources(r: Resources) -> docker.ServiceTaskSpecResourcesArgs:
    return docker.ServiceTaskSpecResourcesArgs(
        limits=docker.ServiceTaskSpecResourcesLimitsArgs(
            nano_cpus=round(r.cpus * _NANO), memory_bytes=r.memory_mb * _MIB
        ),
        reservation=docker.ServiceTaskSpecResourcesReservationArgs(
            nano_cpus=round(r.reserve_cpus * _NANO), memory_bytes=r.reserve_memory_mb * _MIB
        ),
    )


def _update_fields(u: UpdatePolicy) -> dict[str, Any]:
    return {
        "parallelism": u.parallelism,
        "delay": duration(u.delay_s),
        "order": u.order,
        "failure_action": u.failure_action,
        "monitor": duration(u.monitor_s),
        "max_failure_ratio": f"{u.max_failure_ratio:g}",
    }


def stack_volume(
    resource_name: str, topology: Topology, key: str, parent: pulumi.Resource
) -> docker.Volume:
    """A named volume of the stack. `pulumi destroy` leaves it, as `make down` does: the data
    is what the stack is for; `docker volume rm` (or `make down PURGE=1`) removes it."""
    return docker.Volume(
        resource_name,
        name=topology.volume(key).name,
        labels=[
            docker.VolumeLabelArgs(label=k, value=v)
            for k, v in stack_labels(topology.stack).items()
        ],
        opts=pulumi.ResourceOptions(parent=parent, retain_on_delete=True),
    )


def stack_config(
    resource_name: str, topology: Topology, key: str, parent: pulumi.Resource
) -> docker.ServiceConfig:
    """A Swarm config of the stack. Its name ends in a hash of its content, so a changed file
    is a new config and the services using it roll onto it (Swarm configs are immutable)."""
    config = topology.config(key)
    return docker.ServiceConfig(
        resource_name,
        name=config.name,
        data=base64.b64encode(config.data.encode()).decode(),
        labels=[
            docker.ServiceConfigLabelArgs(label=k, value=v)
            for k, v in stack_labels(topology.stack).items()
        ],
        opts=pulumi.ResourceOptions(parent=parent),
    )
