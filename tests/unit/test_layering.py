"""The packages depend on each other in one direction only (ARCHITECTURE.md, "Layers").

plugins/ is what a plugin author builds on, so it imports nothing of homerun's own; core/
builds on plugins/; the two services build on core/ and never on each other. Every import
counts, a function-level one included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = {"core", "runners", "notifier", "plugins", "homerun", "stack", "bench"}

# package -> the packages of ours it may import (itself always)
ALLOWED = {
    "plugins": set(),
    "core": {"plugins"},
    "runners": {"core", "plugins"},
    "notifier": {"core"},
}


def imported_packages(path: Path) -> dict[str, int]:
    """Our top-level packages that ``path`` imports, each with the first line doing it."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".", 1)[0]
            if top in OURS:
                found.setdefault(top, node.lineno)
    return found


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_every_layered_package_has_modules() -> None:
    # Guards the checks below: a renamed package would otherwise pass them vacuously.
    for package in ALLOWED:
        assert modules(package), package


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_layers_below_it(package: str) -> None:
    allowed = ALLOWED[package] | {package}
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {other}"
        for path in modules(package)
        for other, line in imported_packages(path).items()
        if other not in allowed
    ]
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_a_function_level_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from core.models import JSON\n    import runners.worker\n")
    assert imported_packages(module) == {"core": 2, "runners": 3}
