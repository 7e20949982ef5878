"""The stack's own registry (``runRegistry``): ``registry`` with its volume and, with
host-mode ports, ``registry-proxy`` and its HAProxy config, which put it on every node's
127.0.0.1 (see stack/topology.py)."""

from __future__ import annotations

import asyncio

import pulumi
import pulumi_docker as docker

from stack import probe
from stack.components.render import Refs, service_args, stack_config, stack_volume
from stack.model import Topology
from stack.topology import REGISTRY_SERVICE_KEYS

# How long a first deployment may take to pull the registry's and the proxy's images.
READY_TIMEOUT_S = 300.0


class Registry(pulumi.ComponentResource):
    volume: docker.Volume
    configs: dict[str, docker.ServiceConfig]
    services: dict[str, docker.Service]
    # The registry's address (host:port), resolved once it answers there: push after this.
    ready: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        topology: Topology,
        refs: Refs,
        address: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("homerun:stack:Registry", name, None, opts)
        keys = [svc.key for svc in topology.services if svc.key in REGISTRY_SERVICE_KEYS]
        part = topology.only(keys)
        self.volume = stack_volume(f"{name}-data", topology, "registry", self)
        self.configs = {
            c.key: stack_config(f"{name}-{c.key}", topology, c.key, self) for c in part.configs
        }
        refs = refs.with_volumes({"registry": self.volume}).with_configs(self.configs)
        self.services = {
            key: docker.Service(
                f"{name}-{'proxy' if key == 'registry-proxy' else 'service'}",
                service_args(topology.stack, topology.service(key), refs),
                opts=pulumi.ResourceOptions(parent=self),
            )
            for key in keys
        }
        self.ready = pulumi.Output.all(*(s.id for s in self.services.values())).apply(
            lambda _: _answering(address)
        )
        self.register_outputs({"address": self.ready})


async def _answering(address: str) -> str:
    # A preview pushes nothing; only a real update waits for the registry.
    if not pulumi.runtime.is_dry_run():
        # Blocking: off the event loop, which Pulumi's other registrations share.
        # 401: the registry answers, and asks for the password it was given.
        url = f"http://{address}/v2/"
        await asyncio.to_thread(probe.wait_until_serving, url, READY_TIMEOUT_S, expect=401)
    return address
