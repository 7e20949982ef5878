"""The application: the API, the Docker API guard, the runners and the notifier, services
of one image (and one more runner service per declared runner group, ``runner-<name>``);
the guard and the runners share the node-local volume of the guard's socket."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from stack.components.render import Refs, service_args, stack_volume
from stack.model import Topology

APP_SERVICES = ("api", "docker-guard", "runner", "notifier")


def app_service_keys(topology: Topology) -> list[str]:
    """APP_SERVICES and the runner groups' services, in the topology's order."""
    groups = [s.key for s in topology.services if s.key.startswith("runner-")]
    return [*APP_SERVICES, *groups]


class App(pulumi.ComponentResource):
    volumes: dict[str, docker.Volume]
    services: dict[str, docker.Service]

    def __init__(
        self, name: str, topology: Topology, refs: Refs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homerun:stack:App", name, None, opts)
        self.volumes = {
            "guard-socket": stack_volume(f"{name}-guard-socket", topology, "guard-socket", self)
        }
        refs = refs.with_volumes(self.volumes)
        self.services = {
            key: docker.Service(
                f"{name}-{key}",
                service_args(topology.stack, topology.service(key), refs),
                opts=pulumi.ResourceOptions(parent=self),
            )
            for key in app_service_keys(topology)
        }
        self.register_outputs({f"{key}_name": s.name for key, s in self.services.items()})
