"""The homerun stack as a Pulumi program (``Pulumi.yaml``: ``main: stack/``).

Only reads the config and wires the components; what each service is comes from
``stack.topology``, the same description ``python -m stack.compose`` renders.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    import pulumi

    from stack.components.edge import Edge
    from stack.components.network import Networks
    from stack.components.postgres import Postgres
    from stack.components.redis import Redis
    from stack.components.render import Refs
    from stack.components.secrets import Secrets
    from stack.components.services import App
    from stack.config import read
    from stack.topology import build_topology

    deployment = read(pulumi.Config())
    topology = build_topology(deployment.stack)
    name = topology.stack

    networks = Networks(f"{name}-networks", topology)
    secrets = Secrets(f"{name}-secrets", topology, deployment.secrets)
    refs = Refs(networks=networks.networks, secrets=secrets.secrets, configs={}, volumes={})
    postgres = Postgres(f"{name}-postgres", topology, refs)
    redis = Redis(f"{name}-redis", topology, refs)
    # The API migrates the database at start-up and the runners need the queue: start the
    # application once its data services exist.
    app = App(f"{name}-app", topology, refs, pulumi.ResourceOptions(depends_on=[postgres, redis]))
    Edge(f"{name}-edge", topology, refs, pulumi.ResourceOptions(depends_on=[app]))

    port = deployment.stack.api_port
    pulumi.export("stack", name)
    pulumi.export("apiUrl", f"http://localhost:{port}")
    pulumi.export("services", [svc.name for svc in topology.services])
    pulumi.export("endpointMode", deployment.stack.endpoint_mode.value)
    pulumi.export("publishMode", deployment.stack.publish_mode.value)


def _importable() -> None:
    # Pulumi runs this directory as a script (runpy.run_path), which puts stack/ itself on
    # sys.path; the program imports its modules as the `stack` package, from the repo root.
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)


if __name__ == "__main__":
    _importable()
    main()
