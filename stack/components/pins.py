"""Every service image pinned where the program can know exactly what it is.

The provider creates a service with ``QueryRegistry`` on: the manager asks the registry and
stores ``tag@sha256:...``, while an update sends the spec as given and the provider has no
diff suppression on ``image``, so a plain tag is a change on every ``pulumi up``, and a
local ``homerun/*`` tag is a question to Docker Hub about someone else's repository. So:

- local images (no registry): the image ID (``sha256:...``), as this machine's engine
  inspects it. Swarm neither resolves nor pulls an image named by ID (the node runs what it
  has), and a rebuild is a new ID, so a changed spec that Swarm rolls out;
- images in a registry (``registry``, and the stack's own registry's public images):
  ``name@sha256:<digest>`` as the registry answers for the tag now; a canonical reference
  is never re-resolved, so what is stored is what was sent.

The stack's own pushes are pinned by stack.components.images.
"""

from __future__ import annotations

from collections.abc import Iterable

import pulumi
import pulumi_docker as docker


def local(images: Iterable[str]) -> dict[str, pulumi.Output[str]]:
    """Image -> its local image ID (a missing image fails the preview already)."""
    return {image: docker.get_remote_image_output(name=image).id for image in sorted(set(images))}


def remote(
    images: Iterable[str], provider: pulumi.ProviderResource | None = None
) -> dict[str, pulumi.Output[str]]:
    """Image -> ``image@<digest the registry answers>`` (with ``provider``'s credentials)."""
    opts = pulumi.InvokeOptions(provider=provider) if provider else None
    return {
        image: pulumi.Output.concat(
            image, "@", docker.get_registry_image_output(name=image, opts=opts).sha256_digest
        )
        for image in sorted(set(images))
    }
