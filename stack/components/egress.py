"""The egress proxy: the only way out of the internal network egress tasks join."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from stack.components.render import Refs, service_args, stack_config
from stack.model import Topology


class EgressProxy(pulumi.ComponentResource):
    configs: dict[str, docker.ServiceConfig]
    service: docker.Service

    def __init__(
        self, name: str, topology: Topology, refs: Refs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homerun:stack:EgressProxy", name, None, opts)
        svc = topology.service("egress-proxy")
        self.configs = {
            ref.config: stack_config(f"{name}-{ref.config}", topology, ref.config, self)
            for ref in svc.configs
        }
        self.service = docker.Service(
            f"{name}-squid",
            service_args(topology.stack, svc, refs.with_configs(self.configs)),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"name": self.service.name})
