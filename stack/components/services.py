"""The application: the API, the runners and the notifier, three services of one image."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from stack.components.render import Refs, service_args
from stack.model import Topology

APP_SERVICES = ("api", "runner", "notifier")


class App(pulumi.ComponentResource):
    services: dict[str, docker.Service]

    def __init__(
        self, name: str, topology: Topology, refs: Refs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homerun:stack:App", name, None, opts)
        self.services = {
            key: docker.Service(
                f"{name}-{key}",
                service_args(topology.stack, topology.service(key), refs),
                opts=pulumi.ResourceOptions(parent=self),
            )
            for key in APP_SERVICES
        }
        self.register_outputs({f"{key}_name": s.name for key, s in self.services.items()})
