"""The plugin manager: misspelled hooks refused, disabled plugins never loaded, a listing."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Callable

import pluggy
import pytest

from homerun import cli
from plugins import manager
from plugins.hookspecs import hookimpl
from plugins.manager import PluginInfo, collect_task_types, describe_plugins, make_plugin_manager
from plugins.tasktypes import ContainerSpec, TaskType


def throwaway_type(name: str) -> TaskType:
    return TaskType(name, "a test type", {"type": "object"}, lambda p, c: ContainerSpec("x", []))


class Misspelled:
    @hookimpl
    def register_task_type(self, register: Callable[[TaskType], None]) -> None:  # sic
        register(throwaway_type("never-registered"))


class TwoTypes:
    @hookimpl
    def register_task_types(self, register: Callable[[TaskType], None]) -> None:
        register(throwaway_type("test-one"))
        register(throwaway_type("test-two"))


def test_a_misspelled_hook_implementation_stops_the_start() -> None:
    with pytest.raises(pluggy.PluginValidationError) as info:
        make_plugin_manager(extra_plugins=[Misspelled()], load_entry_points=False)
    message = str(info.value)
    assert "unknown hook 'register_task_type'" in message
    assert "homerun's hooks are: register_task_types, task_output" in message


def test_a_misspelled_hook_in_a_module_plugin_stops_the_start_too() -> None:
    module = types.ModuleType("homerun_test_typo")
    module.task_outptu = hookimpl(lambda run: None)  # type: ignore[attr-defined]
    with pytest.raises(pluggy.PluginValidationError, match="unknown hook 'task_outptu'"):
        make_plugin_manager(extra_plugins=[module], load_entry_points=False)


def test_a_disabled_built_in_is_never_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    # Importing this name would fail: being blocked, it is never tried.
    missing = "plugins.builtin.no_such_plugin"
    monkeypatch.setattr(manager, "DEFAULT_PLUGINS", (*manager.DEFAULT_PLUGINS, missing))
    pm = make_plugin_manager(load_entry_points=False, disabled=[missing, "plugins.builtin.python"])
    assert pm.is_blocked(missing) and missing not in sys.modules
    assert pm.get_plugin("plugins.builtin.python") is None
    assert set(collect_task_types(pm)) == {"container", "shell"}
    with pytest.raises(ModuleNotFoundError):
        make_plugin_manager(load_entry_points=False)


def test_a_disabled_entry_point_is_blocked_and_the_rest_load() -> None:
    pm = make_plugin_manager(disabled=["wordcount"])
    assert pm.is_blocked("wordcount") and pm.get_plugin("wordcount") is None
    assert "wordcount" not in collect_task_types(pm)


def test_the_listing_names_each_plugin_its_package_and_what_it_contributes() -> None:
    extra = TwoTypes()
    pm = make_plugin_manager(extra_plugins=[extra], disabled=["plugins.builtin.container"])
    listing = {info.name: info for info in describe_plugins(pm)}
    homerun_version = listing["plugins.builtin.shell"].version
    assert homerun_version is not None
    assert listing["plugins.builtin.shell"] == PluginInfo(
        "plugins.builtin.shell", "homerun", homerun_version, ("shell",), ("register_task_types",)
    )
    assert listing["plugins.builtin.output"].task_types == ()
    assert listing["plugins.builtin.output"].hooks == ("task_output",)
    assert listing["wordcount"] == PluginInfo(
        "wordcount",
        "homerun-wordcount",
        "0.1.0",
        ("wordcount",),
        ("register_task_types", "task_output"),
    )
    [unpackaged] = [info for info in listing.values() if info.package is None]
    assert unpackaged.task_types == ("test-one", "test-two")
    assert "plugins.builtin.container" not in listing
    # In load order: built-ins, entry points, then the rest.
    assert list(listing)[:2] == ["plugins.builtin.output", "plugins.builtin.shell"]


def test_the_listing_refuses_what_a_service_would_refuse() -> None:
    class Clash:
        @hookimpl
        def register_task_types(self, register: Callable[[TaskType], None]) -> None:
            register(throwaway_type("shell"))

    with pytest.raises(ValueError, match="'shell' is registered twice"):
        describe_plugins(make_plugin_manager(extra_plugins=[Clash()], load_entry_points=False))


def test_homerun_plugins_prints_the_loaded_plugins(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOMERUN_DISABLED_PLUGINS", "plugins.builtin.container")
    assert cli.main(["plugins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["PLUGIN", "PACKAGE", "TASK", "TYPES", "HOOKS"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:-1]}
    assert rows["wordcount"] == [
        "homerun-wordcount",
        "0.1.0",
        "wordcount",
        "register_task_types,",
        "task_output",
    ]
    assert rows["plugins.builtin.output"][-2:] == ["-", "task_output"]
    assert "plugins.builtin.container" not in rows
    assert lines[-1] == "disabled (HOMERUN_DISABLED_PLUGINS): plugins.builtin.container"


def test_homerun_plugins_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("HOMERUN_DISABLED_PLUGINS", raising=False)
    assert cli.main(["plugins", "--json"]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert listed["plugins.builtin.python"]["task_types"] == ["python"]
    assert listed["wordcount"]["package"] == "homerun-wordcount"
