"""Every hook has its section in the plugin-author docs, and the section tells the truth."""

from __future__ import annotations

import re
from pathlib import Path

import pluggy
import pytest

from plugins import hookspecs

DOCS = Path(__file__).resolve().parents[3] / "docs" / "plugins"
HOOKS_MD = DOCS / "hooks.md"


def hook_callers() -> dict[str, pluggy.HookCaller]:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return {
        name: caller
        for name, caller in vars(pm.hook).items()
        if isinstance(caller, pluggy.HookCaller) and caller.spec is not None
    }


def sections(markdown: str) -> dict[str, str]:
    """Level-2 sections whose heading is a code span: ``## `name` ``."""
    parts = re.split(r"^## `([A-Za-z_][A-Za-z0-9_]*)`.*$", markdown, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


HOOKS = hook_callers()


def test_the_hookspecs_are_found() -> None:
    # Guards the introspection itself: an empty set would make every check below vacuous.
    assert {"register_task_types", "task_output"} <= set(HOOKS)


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_hook_has_a_section_in_the_reference(name: str) -> None:
    documented = sections(HOOKS_MD.read_text())
    assert name in documented, f"hook {name} has no '## `{name}`' section in {HOOKS_MD}"
    body = documented[name]
    spec = HOOKS[name].spec
    assert spec is not None
    for arg in spec.argnames:
        assert f"`{arg}`" in body, f"{name}: argument {arg} is not documented"
    says_firstresult = "firstresult" in body
    assert says_firstresult, f"{name}: say whether firstresult applies"
    if spec.opts.get("firstresult"):
        assert "first non-`None`" in body, f"{name}: explain the firstresult semantics"
    else:
        assert "not `firstresult`" in body, f"{name}: say it is not firstresult"
    for topic in ("block", "cleanup"):
        assert topic in body.lower(), f"{name}: say whether it may {topic} / who owns cleanup"


def test_reference_documents_no_hook_that_does_not_exist() -> None:
    stale = set(sections(HOOKS_MD.read_text())) - set(HOOKS)
    assert not stale, f"{HOOKS_MD} documents hooks homerun does not call: {sorted(stale)}"


def test_tutorial_exists_and_links_the_reference() -> None:
    tutorial = (DOCS / "tutorial.md").read_text()
    assert "hooks.md" in tutorial
    assert "[project.entry-points.homerun]" in tutorial
