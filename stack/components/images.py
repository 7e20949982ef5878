"""The homerun images, pushed into the stack's own registry (``runRegistry``).

Each locally built ``homerun/<name>:<tag>`` (``make images`` on the machine running Pulumi)
is tagged ``<registry>/homerun/<name>:<tag>`` and pushed through this machine's engine. The
services run it pinned to the digest of that push, ``<registry>/homerun/<name>:<tag>@sha256:..``
(``pinned``), and every node pulls exactly that. An image rebuilt under the same tag is pushed
again with a new digest, so the services running it get a changed spec and Swarm rolls them
onto it: what ``docker stack deploy --resolve-image always`` (scripts/up.sh) does on the compose
path. Pinned by tag alone, the spec would not change and the old image would keep running.
"""

from __future__ import annotations

from collections.abc import Callable

import pulumi
import pulumi_docker as docker

from stack.config import RegistryAuth
from stack.topology import IMAGE_NAMES, StackConfig


class Images(pulumi.ComponentResource):
    tags: dict[str, docker.Tag]
    pushes: dict[str, docker.RegistryImage]
    # An image as the topology names it (StackConfig.image) -> that name pinned to the pushed
    # digest: what Refs.images takes.
    pinned: dict[str, pulumi.Output[str]]

    def __init__(
        self,
        name: str,
        config: StackConfig,
        registry: pulumi.Output[str],
        auth: RegistryAuth,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``registry``: the registry's address, resolved once it takes pushes; ``auth``: its
        user and password (stack.config: the registry-password secret)."""
        super().__init__("homerun:stack:Images", name, None, opts)
        self.tags, self.pushes, self.pinned = {}, {}, {}
        for image in IMAGE_NAMES:
            source, target = config.local_image(image), config.image(image)
            # The local image's ID, as the provider inspects it (a missing image fails the
            # preview already): a rebuild under the same tag changes it, which replaces both
            # resources below, so it is tagged and pushed again.
            local_id = docker.get_remote_image_output(name=source).id
            tag = docker.Tag(
                f"{name}-{image}-tag",
                source_image=source,
                # Known only once the registry answers, so nothing is pushed before.
                target_image=registry.apply(_constant(target)),
                tag_triggers=[local_id],
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.tags[image] = tag
            push = self.pushes[image] = docker.RegistryImage(
                f"{name}-{image}",
                name=tag.target_image,
                # The images outlive a `pulumi destroy`, like the volumes: the registry's
                # volume is kept, and so are what the running tasks were started from.
                keep_remotely=True,
                # The provider reads the pushed digest from the registry itself, over https
                # unless the address says http; the stack's registry has no TLS.
                auth_config=docker.RegistryImageAuthConfigArgs(
                    address=registry.apply(lambda address: f"http://{address}"),
                    username=auth.username,
                    password=auth.password,
                ),
                triggers={"sourceImageId": local_id},
                opts=pulumi.ResourceOptions(parent=self),
            )
            # The digest the registry answered for this push (``sha256:...``): taken from the
            # push itself, so a service naming it also waits for the push.
            self.pinned[target] = pulumi.Output.concat(push.name, "@", push.sha256_digest)
        self.register_outputs(
            {f"{image}_pinned": self.pinned[config.image(image)] for image in IMAGE_NAMES}
        )


def _constant(value: str) -> Callable[[str], str]:
    return lambda _: value
