"""The stack's overlay networks: ``public`` (the API's front door, the notifier's way out)
and ``data`` (internal: Postgres and Redis, no route out)."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from stack.components.render import stack_labels
from stack.model import Topology


class Networks(pulumi.ComponentResource):
    networks: dict[str, docker.Network]

    def __init__(
        self, name: str, topology: Topology, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homerun:stack:Networks", name, None, opts)
        self.networks = {
            n.key: docker.Network(
                f"{name}-{n.key}",
                name=n.name,
                driver=n.driver,
                attachable=n.attachable,
                internal=n.internal,
                options={"encrypted": ""} if n.encrypted else None,
                labels=[
                    docker.NetworkLabelArgs(label=k, value=v)
                    for k, v in stack_labels(topology.stack, n.labels).items()
                ],
                opts=pulumi.ResourceOptions(parent=self),
            )
            for n in topology.networks
        }
        self.register_outputs({f"{key}_id": net.id for key, net in self.networks.items()})
