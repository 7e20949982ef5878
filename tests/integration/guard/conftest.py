"""The runner suites' fixtures (a private instance label, the Docker client) serve here too."""

from __future__ import annotations

from tests.integration.runners.conftest import docker_client, instance

__all__ = ["docker_client", "instance"]
