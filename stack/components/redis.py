"""Redis: the durable job queue (AOF, noeviction, a volume) and the disposable event streams
(no files; every event is in the Postgres outbox first)."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from stack.components.render import Refs, service_args, stack_volume
from stack.model import Topology


class Redis(pulumi.ComponentResource):
    volumes: dict[str, docker.Volume]
    services: dict[str, docker.Service]

    def __init__(
        self, name: str, topology: Topology, refs: Refs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homerun:stack:Redis", name, None, opts)
        self.volumes = {"queue": stack_volume(f"{name}-queue-data", topology, "redis-queue", self)}
        refs = refs.with_volumes({"redis-queue": self.volumes["queue"]})
        self.services = {
            role: docker.Service(
                f"{name}-{role}",
                service_args(topology.stack, topology.service(f"redis-{role}"), refs),
                opts=pulumi.ResourceOptions(parent=self),
            )
            for role in ("queue", "events")
        }
        self.register_outputs({f"{role}_name": s.name for role, s in self.services.items()})
