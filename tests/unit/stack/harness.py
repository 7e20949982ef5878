"""Run the Pulumi program under ``pulumi.runtime.set_mocks`` and capture every resource's inputs.

The Pulumi CLI and engine are not available here; the mocks stand in for the engine only:
the program, the components and the pulumi-docker SDK run for real, and what they would send
to the engine is what the tests assert on.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.runtime

PROJECT = "homerun"
SECRET_VALUES = {
    "dbPassword": "db-s3cret-value-XYZ",
    "replicationPassword": "repl-s3cret-value-XYZ",
    "adminToken": "admin-s3cret-token-XYZ",
}


@dataclass(frozen=True)
class Captured:
    typ: str
    name: str  # Pulumi logical name
    inputs: dict[str, Any]
    parent: str | None


class CaptureMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[Captured] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append(Captured(args.typ, args.name, dict(args.inputs), None))
        # The engine would echo inputs as outputs and assign an id; so does this.
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
        return {}, None


def _install(mocks: CaptureMocks) -> None:
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack="unit", preview=False)


# pulumi.runtime.test drives the thread's current event loop by hand, and futures Pulumi
# keeps between program runs must be awaited on the loop they were made on. pytest-asyncio
# tests leave no current loop behind, so every run is pinned to this one.
_LOOP = asyncio.new_event_loop()
asyncio.set_event_loop(_LOOP)

# Mocks go in before the program is imported anywhere (the standard pattern); every run
# below installs a fresh set again so runs do not see each other's resources.
_install(CaptureMocks())


def run_program(config: dict[str, Any] | None = None, secrets: bool = True) -> list[Captured]:
    """Run stack/__main__.py's main() with ``config`` (keys without the project prefix)."""
    asyncio.set_event_loop(_LOOP)
    mocks = CaptureMocks()
    _install(mocks)
    values: dict[str, str] = {}
    for key, value in {**(SECRET_VALUES if secrets else {}), **(config or {})}.items():
        values[f"{PROJECT}:{key}"] = value if isinstance(value, str) else json.dumps(value)
    pulumi.runtime.set_all_config(values, [f"{PROJECT}:{k}" for k in SECRET_VALUES if secrets])
    from stack import __main__ as program

    # pulumi.runtime.test runs the program and waits for every registration to finish.
    pulumi.runtime.test(program.main)()  # type: ignore[no-untyped-call]
    return mocks.resources


def services(resources: list[Captured]) -> dict[str, dict[str, Any]]:
    """Swarm service name -> inputs of each docker:index/service:Service."""
    return {
        r.inputs["name"]: r.inputs for r in resources if r.typ == "docker:index/service:Service"
    }


def of_type(resources: list[Captured], typ: str) -> list[Captured]:
    return [r for r in resources if r.typ == typ]
