"""The edge proxy: the published API port, in front of the API replicas."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from stack.components.render import Refs, service_args, stack_config
from stack.model import Topology


class Edge(pulumi.ComponentResource):
    configs: dict[str, docker.ServiceConfig]
    service: docker.Service

    def __init__(
        self, name: str, topology: Topology, refs: Refs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homerun:stack:Edge", name, None, opts)
        svc = topology.service("edge")
        self.configs = {
            ref.config: stack_config(f"{name}-{ref.config}", topology, ref.config, self)
            for ref in svc.configs
        }
        self.service = docker.Service(
            f"{name}-proxy",
            service_args(topology.stack, svc, refs.with_configs(self.configs)),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"name": self.service.name})
