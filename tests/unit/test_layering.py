"""No package imports one that imports it back, lazy imports included.

The graph is read from the source (every ``import`` anywhere in a module, so a function's
lazy import counts too) and must be acyclic (``graphlib``). What it allows, top down:

    bench, stack        homerun (CLI)  ──lazily──►  core, runners (server subcommands)
    runners ──► core ──► plugins
    everything ──► wire (the API's models; imports nothing of ours)
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bench", "core", "homerun", "plugins", "runners", "stack", "wire")
# Edges that exist today and are being removed elsewhere; each must still exist (so the
# entry goes when the edge does). plugins -> core: only for core.models.JSON (issue 10, B).
KNOWN = {("plugins", "core")}


def imported_packages(path: Path, own: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [own] if node.level else [node.module or ""]
        else:
            continue
        found |= {name.split(".")[0] for name in names} & set(PACKAGES)
    return found - {own}


def graph() -> dict[str, set[str]]:
    return {
        package: {
            imported
            for path in (ROOT / package).rglob("*.py")
            for imported in imported_packages(path, package)
        }
        for package in PACKAGES
    }


def test_the_package_graph_has_no_cycle() -> None:
    edges = graph()
    for source, target in KNOWN:
        assert target in edges[source], f"{source} -> {target} is gone: drop it from KNOWN"
        edges[source].discard(target)
    try:
        list(graphlib.TopologicalSorter(edges).static_order())
    except graphlib.CycleError as exc:
        raise AssertionError(f"import cycle between packages: {exc.args[1]}") from None


def test_wire_imports_nothing_of_ours() -> None:
    # Server and client both depend on the models; the models depend on neither.
    assert graph()["wire"] == set()


def test_core_never_imports_the_cli_or_the_runners() -> None:
    assert {"homerun", "runners"}.isdisjoint(graph()["core"])


def test_the_client_modules_import_no_server_package() -> None:
    # Only homerun.cli reaches into the server, lazily, for the server subcommands.
    for path in (ROOT / "homerun").glob("*.py"):
        if path.name != "cli.py":
            assert {"core", "runners"}.isdisjoint(imported_packages(path, "homerun")), path.name
