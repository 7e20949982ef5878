"""Postgres: the primary and its streaming replica, each with its own volume."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from stack.components.render import Refs, service_args, stack_volume
from stack.model import Topology


class Postgres(pulumi.ComponentResource):
    volumes: dict[str, docker.Volume]
    services: dict[str, docker.Service]

    def __init__(
        self, name: str, topology: Topology, refs: Refs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homerun:stack:Postgres", name, None, opts)
        self.volumes = {
            role: stack_volume(f"{name}-{role}-data", topology, f"pg-{role}", self)
            for role in ("primary", "replica")
        }
        refs = refs.with_volumes({f"pg-{role}": v for role, v in self.volumes.items()})
        primary = docker.Service(
            f"{name}-primary",
            service_args(topology.stack, topology.service("postgres-primary"), refs),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # The replica's entrypoint waits for the primary anyway; ordering the creation just
        # keeps its first attempts from failing noisily.
        replica = docker.Service(
            f"{name}-replica",
            service_args(topology.stack, topology.service("postgres-replica"), refs),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[primary]),
        )
        self.services = {"primary": primary, "replica": replica}
        self.register_outputs({f"{role}_name": s.name for role, s in self.services.items()})
