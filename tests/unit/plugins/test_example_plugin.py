"""The example plugin in examples/homerun-wordcount is installed and found by entry point.

It is installed into the dev environment (``pip install -e examples/homerun-wordcount``), so
these tests see it exactly as homerun sees any third-party plugin.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from plugins.manager import collect_task_types, make_plugin_manager
from plugins.tasktypes import FinishedRun


def run(task_type: str, stdout: str, output_file: bytes | None = None) -> FinishedRun:
    return FinishedRun(
        task_type=task_type,
        exit_code=0,
        stdout=stdout,
        stderr="",
        stdout_truncated=False,
        stderr_truncated=False,
        output_file=output_file,
    )


def test_it_declares_an_entry_point_in_the_homerun_group() -> None:
    found = {ep.name: ep.value for ep in entry_points(group="homerun")}
    assert found.get("wordcount") == "homerun_wordcount", (
        "examples/homerun-wordcount is not installed: pip install -e examples/homerun-wordcount"
    )


def test_the_plugin_manager_loads_it_and_collects_its_task_type() -> None:
    import homerun_wordcount

    pm = make_plugin_manager()
    assert pm.get_plugin("wordcount") is homerun_wordcount
    registry = collect_task_types(pm)
    assert set(registry) == {"container", "python", "shell", "wordcount"}
    assert registry["wordcount"].description.startswith("Count the words")


def test_without_entry_points_only_the_builtins_remain() -> None:
    registry = collect_task_types(make_plugin_manager(load_entry_points=False))
    assert set(registry) == {"container", "python", "shell"}


def test_an_operator_can_disable_it_by_its_entry_point_name() -> None:
    registry = collect_task_types(make_plugin_manager(disabled=["wordcount"]))
    assert "wordcount" not in registry


def test_its_task_output_wins_for_its_type_and_the_fallback_serves_the_rest() -> None:
    pm = make_plugin_manager()
    counts = "words=2 lines=1 characters=7\n"
    assert pm.hook.task_output(run=run("wordcount", counts)) == {
        "words": 2,
        "lines": 1,
        "characters": 7,
    }
    assert pm.hook.task_output(run=run("shell", counts, b'{"from": "file"}')) == {"from": "file"}
