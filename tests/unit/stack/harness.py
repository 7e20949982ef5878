"""Run the Pulumi program under ``pulumi.runtime.set_mocks`` and capture every resource's inputs.

The Pulumi CLI and engine are not available here; the mocks stand in for the engine only:
the program, the components and the pulumi-docker SDK run for real, and what they would send
to the engine is what the tests assert on.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from dataclasses import dataclass, replace
from typing import Any
from unittest import mock

import pulumi
import pulumi.runtime
from pulumi.runtime.mocks import MockMonitor

PROJECT = "homerun"
SECRET_VALUES = {
    "dbPassword": "db-s3cret-value-XYZ",
    "replicationPassword": "repl-s3cret-value-XYZ",
    "adminToken": "admin-s3cret-token-XYZ",
    "redisPassword": "redis-s3cret-value-XYZ",
    "secretsKeyring": "k1 a2V5cmluZy1zM2NyZXQtdmFsdWUtWFlaLTMyYnl0ZXM=",
    "secretNamingKey": "naming-k3y-value-XYZ",
    "uiSessionKey": "ui-session-key-for-tests",
    "runRegistryPassword": "registry-s3cret-value-XYZ",
    "egressProxyKey": "egress-proxy-key-for-tests",
}


GET_LOCAL_IMAGE = "docker:index/getRemoteImage:getRemoteImage"
GET_REGISTRY_IMAGE = "docker:index/getRegistryImage:getRegistryImage"
PUSH = "docker:index/registryImage:RegistryImage"


def local_image_id(name: str) -> str:
    """The image ID the mocks answer for a local image ``name``."""
    return f"sha256:local-{name}"


def registry_digest(name: str) -> str:
    """The digest the mocks answer for the tag ``name`` in its registry."""
    return "sha256:" + hashlib.sha256(f"registry {name}".encode()).hexdigest()


def pushed_digest(name: str, source_id: str) -> str:
    """The digest the mocks answer for pushing the local image ``source_id`` as ``name``: one
    per image and per build, like a registry's, so tests can tell the pushes apart."""
    return "sha256:" + hashlib.sha256(f"{name} {source_id}".encode()).hexdigest()


@dataclass(frozen=True)
class Captured:
    typ: str
    name: str  # Pulumi logical name
    inputs: dict[str, Any]
    parent: str | None  # the parent's URN
    urn: str = ""
    # URNs the engine is told this resource waits for: depends_on (a component expanded to
    # its children) and the resources its inputs came from.
    dependencies: tuple[str, ...] = ()
    # The resource options the engine is sent (RegisterResourceRequest), which the mocks'
    # new_resource never sees: deleteBeforeReplace, ignoreChanges, provider.
    delete_before_replace: bool = False
    ignore_changes: tuple[str, ...] = ()
    provider: str = ""


class CaptureMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[Captured] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append(Captured(args.typ, args.name, dict(args.inputs), None))
        # The engine would echo inputs as outputs and assign an id; so does this.
        outputs = dict(args.inputs)
        if args.typ == PUSH:
            # ...and the provider would add the digest the registry answered for the push.
            source_id = args.inputs["triggers"]["sourceImageId"]
            outputs["sha256Digest"] = pushed_digest(args.inputs["name"], source_id)
        return f"{args.name}-id", outputs

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        if args.token == GET_LOCAL_IMAGE:
            # The provider would inspect the image on this machine's engine.
            return {"id": local_image_id(args.args["name"]), "name": args.args["name"]}, []
        if args.token == GET_REGISTRY_IMAGE:
            # The provider would ask the registry for the tag's manifest digest.
            name = args.args["name"]
            return {"id": name, "name": name, "sha256Digest": registry_digest(name)}, []
        raise NotImplementedError(f"no mock for {args.token}")


class CaptureMonitor(MockMonitor):
    """The mock engine, also keeping what Mocks.new_resource is not shown: each resource's
    parent and dependencies, by (type, logical name)."""

    def __init__(self, mocks: CaptureMocks) -> None:
        super().__init__(mocks)
        self.graph: dict[tuple[str, str], tuple[str, str | None, tuple[str, ...]]] = {}
        self.options: dict[tuple[str, str], tuple[bool, tuple[str, ...], str]] = {}
        self._lock = threading.Lock()

    def RegisterResource(self, request: Any) -> Any:  # the gRPC method it stands in for
        urn = self.make_urn(request.parent, request.type, request.name)
        with self._lock:
            key = (request.type, request.name)
            assert key not in self.graph, f"two resources named {key}"
            self.graph[key] = (urn, request.parent or None, tuple(request.dependencies))
            self.options[key] = (
                bool(request.deleteBeforeReplace),
                tuple(request.ignoreChanges),
                str(request.provider),
            )
        return super().RegisterResource(request)  # type: ignore[no-untyped-call]


def _install(mocks: CaptureMocks) -> CaptureMonitor:
    monitor = CaptureMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack="unit", preview=False, monitor=monitor)
    return monitor


# pulumi.runtime.test drives the thread's current event loop by hand, and futures Pulumi
# keeps between program runs must be awaited on the loop they were made on. pytest-asyncio
# tests leave no current loop behind, so every run is pinned to this one.
_LOOP = asyncio.new_event_loop()
asyncio.set_event_loop(_LOOP)

# Mocks go in before the program is imported anywhere (the standard pattern); every run
# below installs a fresh set again so runs do not see each other's resources.
_install(CaptureMocks())


class Run(list[Captured]):
    """The resources of one run of the program, in registration order."""

    # URLs the program waited to answer (stack.probe), recorded instead of waited for.
    waited: list[str]


def run_program(config: dict[str, Any] | None = None, secrets: bool = True) -> Run:
    """Run stack/__main__.py's main() with ``config`` (keys without the project prefix)."""
    asyncio.set_event_loop(_LOOP)
    mocks = CaptureMocks()
    monitor = _install(mocks)
    waited: list[str] = []
    values: dict[str, str] = {}
    for key, value in {**(SECRET_VALUES if secrets else {}), **(config or {})}.items():
        values[f"{PROJECT}:{key}"] = value if isinstance(value, str) else json.dumps(value)
    pulumi.runtime.set_all_config(values, [f"{PROJECT}:{k}" for k in SECRET_VALUES if secrets])
    from stack import __main__ as program

    # The mocks create nothing, so there is no registry to wait for: record the wait instead.
    with mock.patch("stack.probe.wait_until_serving", lambda url, *_, **__: waited.append(url)):
        # pulumi.runtime.test runs the program and waits for every registration to finish.
        pulumi.runtime.test(program.main)()  # type: ignore[no-untyped-call]
    out = Run()
    for r in mocks.resources:
        urn, parent, dependencies = monitor.graph[(r.typ, r.name)]
        dbr, ignored, provider = monitor.options[(r.typ, r.name)]
        out.append(
            replace(
                r,
                urn=urn,
                parent=parent,
                dependencies=dependencies,
                delete_before_replace=dbr,
                ignore_changes=ignored,
                provider=provider,
            )
        )
    out.waited = waited
    return out


def services(resources: list[Captured]) -> dict[str, dict[str, Any]]:
    """Swarm service name -> inputs of each docker:index/service:Service."""
    return {
        r.inputs["name"]: r.inputs for r in resources if r.typ == "docker:index/service:Service"
    }


def of_type(resources: list[Captured], typ: str) -> list[Captured]:
    return [r for r in resources if r.typ == typ]


def waits_for(resources: list[Captured], resource: Captured) -> set[str]:
    """URNs of every resource ``resource`` is created after: its dependencies, its parents'
    (a child is registered only once its parent is), and theirs, transitively."""
    by_urn = {r.urn: r for r in resources}
    seen: set[str] = set()
    todo = [resource.urn]
    while todo:
        current = by_urn.get(todo.pop())
        if current is None:
            continue
        for urn in (*current.dependencies, *([current.parent] if current.parent else [])):
            if urn not in seen:
                seen.add(urn)
                todo.append(urn)
    return seen
