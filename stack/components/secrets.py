"""Swarm secrets: the database and replication passwords and the admin token.

Their values only ever travel as Pulumi secrets into ``docker.Secret`` data; services see
them as files under /run/secrets, never in their environment.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_docker as docker

from stack.components.render import stack_labels
from stack.model import Topology


class Secrets(pulumi.ComponentResource):
    secrets: dict[str, docker.Secret]

    def __init__(
        self,
        name: str,
        topology: Topology,
        values: Mapping[str, pulumi.Input[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("homerun:stack:Secrets", name, None, opts)
        self.secrets = {
            s.key: docker.Secret(
                f"{name}-{s.key}",
                name=s.name,
                data=values[s.key],
                labels=[
                    docker.SecretLabelArgs(label=k, value=v)
                    for k, v in stack_labels(topology.stack).items()
                ],
                # Swarm secrets are immutable: a new value is a new secret.
                opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["data"]),
            )
            for s in topology.secrets
        }
        self.register_outputs({f"{key}_name": sec.name for key, sec in self.secrets.items()})
