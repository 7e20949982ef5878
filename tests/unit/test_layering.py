"""The packages depend on each other in one direction only (ARCHITECTURE.md, "Layers").

The graph is read from the source (every ``import`` anywhere in a module, so a function's
lazy import counts too) and must be acyclic (``graphlib``). What it allows, top down:

    bench, stack        homerun (CLI)  ──lazily──►  core, runners, notifier, guard (servers)
    guard ──► runners (the profile it checks), runners, notifier ──► core ──► plugins
    everything ──► wire (the API's models; imports nothing of ours)

plugins/ is what a plugin author builds on, so it imports nothing of homerun's own but the
wire models; the two services build on core/ and never on each other.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bench", "core", "guard", "homerun", "notifier", "plugins", "runners", "stack", "wire")

# package -> the packages of ours it may import (itself always)
ALLOWED = {
    "wire": set(),
    "plugins": {"wire"},
    "core": {"plugins", "wire"},
    "runners": {"core", "plugins", "wire"},
    "notifier": {"core", "wire"},
    # The Docker API guard checks against the runner's own profile constants.
    "guard": {"runners", "core", "plugins", "wire"},
}


def imported_packages(path: Path, own: str) -> dict[str, int]:
    """Our top-level packages that ``path`` imports, each with the first line doing it."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [own] if node.level else [node.module or ""]
        else:
            continue
        for name in names:
            top = name.split(".", 1)[0]
            if top in PACKAGES and top != own:
                found.setdefault(top, node.lineno)
    return found


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def graph() -> dict[str, set[str]]:
    return {
        package: {
            imported for path in modules(package) for imported in imported_packages(path, package)
        }
        for package in PACKAGES
    }


def test_every_package_has_modules() -> None:
    # Guards the checks below: a renamed package would otherwise pass them vacuously.
    for package in PACKAGES:
        assert modules(package), package


def test_the_package_graph_has_no_cycle() -> None:
    try:
        list(graphlib.TopologicalSorter(graph()).static_order())
    except graphlib.CycleError as exc:
        raise AssertionError(f"import cycle between packages: {exc.args[1]}") from None


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_layers_below_it(package: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {other}"
        for path in modules(package)
        for other, line in imported_packages(path, package).items()
        if other not in ALLOWED[package]
    ]
    assert not wrong, "\n".join(wrong)


def test_the_client_modules_import_no_server_package() -> None:
    # Only homerun.cli reaches into the server, lazily, for the server subcommands.
    server = {"core", "runners", "notifier", "guard"}
    for path in (ROOT / "homerun").glob("*.py"):
        if path.name != "cli.py":
            assert server.isdisjoint(imported_packages(path, "homerun")), path.name


def test_the_check_sees_a_function_level_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from core.models import JSON\n    import runners.worker\n")
    assert imported_packages(module, "x") == {"core": 2, "runners": 3}
