"""The edge proxy: the stack's only published port, in front of the API replicas.

Its HAProxy configuration is a Swarm config whose name ends in a hash of its content, so a
changed file is a new config and the service rolls onto it (Swarm configs are immutable).
"""

from __future__ import annotations

import base64

import pulumi
import pulumi_docker as docker

from stack.components.render import Refs, service_args, stack_labels
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
            ref.config: docker.ServiceConfig(
                f"{name}-{ref.config}",
                name=topology.config(ref.config).name,
                data=base64.b64encode(topology.config(ref.config).data.encode()).decode(),
                labels=[
                    docker.ServiceConfigLabelArgs(label=k, value=v)
                    for k, v in stack_labels(topology.stack).items()
                ],
                opts=pulumi.ResourceOptions(parent=self),
            )
            for ref in svc.configs
        }
        self.service = docker.Service(
            f"{name}-proxy",
            service_args(topology.stack, svc, refs.with_configs(self.configs)),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"name": self.service.name})
