"""The homerun stack as a Pulumi program (``Pulumi.yaml``: ``main: stack/``).

Only reads the config and wires the components; what each service is comes from
``stack.topology``, the same description ``python -m stack.compose`` renders.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    import pulumi
    import pulumi_docker as docker

    from stack.components import converge, pins
    from stack.components.edge import Edge
    from stack.components.egress import EgressProxy
    from stack.components.images import Images
    from stack.components.network import Networks
    from stack.components.postgres import Postgres
    from stack.components.redis import Redis
    from stack.components.registry import Registry
    from stack.components.render import Refs
    from stack.components.secrets import Secrets
    from stack.components.services import App
    from stack.config import read
    from stack.topology import IMAGE_NAMES, build_topology

    deployment = read(pulumi.Config())
    config = deployment.stack
    # Secrets named after their values (stack.secretfiles): a new value is a new secret.
    topology = build_topology(config).with_secret_names(deployment.secret_names)
    name = topology.stack
    # Registry credentials (registryUsername/registryPassword, or the stack's own registry's
    # password) reach the nodes through the provider the services are created with (their
    # `auth` would be replace-on-change).
    provider = None
    if deployment.registry_auth is not None:
        auth = deployment.registry_auth
        provider = docker.Provider(
            f"{name}-docker",
            registry_auth=[
                docker.ProviderRegistryAuthArgs(
                    address=auth.address, username=auth.username, password=auth.password
                )
            ],
        )
    converge.register(provider)

    networks = Networks(f"{name}-networks", topology)
    secrets = Secrets(f"{name}-secrets", topology, deployment.secrets)
    service_images = {svc.image for svc in topology.services}
    own = {config.image(image) for image in IMAGE_NAMES}
    if not config.image_registry:
        images_pinned = pins.local(service_images & own)
    elif config.registry:
        images_pinned = pins.remote(service_images, provider)
    else:  # the stack's own registry: its public images here, its pushes below
        images_pinned = pins.remote(service_images - own, provider)
    refs = Refs(
        networks=networks.networks,
        secrets=secrets.secrets,
        configs={},
        volumes={},
        images=images_pinned,
    )
    # With its own registry the stack's images must be in it before any service pulls them.
    pushed: list[pulumi.Resource] = []
    if config.run_registry:
        assert deployment.registry_auth is not None  # stack.config: from its secret
        registry = Registry(f"{name}-registry", topology, refs, config.image_registry)
        images = Images(
            f"{name}-images",
            config,
            registry.ready,
            deployment.registry_auth,
            pulumi.ResourceOptions(depends_on=[registry]),
        )
        pushed.append(images)
        # The stack's services run what was pushed, pinned to its digest: an image rebuilt under
        # the same tag is then a changed service spec, which Swarm rolls out (the compose path
        # gets the same from `docker stack deploy --resolve-image always`). The registry's own
        # services, created above with the plain refs, run public images.
        refs = refs.with_images(images.pinned)
    after_pushes = pulumi.ResourceOptions(depends_on=pushed)
    postgres = Postgres(f"{name}-postgres", topology, refs, after_pushes)
    redis = Redis(f"{name}-redis", topology, refs, after_pushes)
    # The API migrates the database at start-up and the runners need the queue: start the
    # application once its data services exist.
    app = App(
        f"{name}-app",
        topology,
        refs,
        pulumi.ResourceOptions(depends_on=[postgres, redis, *pushed]),
    )
    Edge(f"{name}-edge", topology, refs, pulumi.ResourceOptions(depends_on=[app]))
    if config.egress:
        EgressProxy(f"{name}-egress", topology, refs, after_pushes)

    port = config.api_port
    pulumi.export("stack", name)
    pulumi.export("apiUrl", f"http://localhost:{port}")
    pulumi.export("registry", config.image_registry)
    pulumi.export("services", [svc.name for svc in topology.services])
    pulumi.export("endpointMode", config.endpoint_mode.value)
    pulumi.export("publishMode", config.publish_mode.value)


def _importable() -> None:
    # Pulumi runs this directory as a script (runpy.run_path), which puts stack/ itself on
    # sys.path; the program imports its modules as the `stack` package, from the repo root.
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)


if __name__ == "__main__":
    _importable()
    main()
