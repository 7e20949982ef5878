"""Builds the plugin manager: built-in task types, then third-party ones by entry point.

A plugin the operator disables (``HOMERUN_DISABLED_PLUGINS``) is blocked before anything
loads it, so its module is never even imported. Once every plugin is registered, a hook
implementation that matches no hook (a misspelled name, which pluggy would otherwise
ignore without a word) stops the service from starting. ``describe_plugins`` says what was
loaded, for ``homerun plugins``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import jsonschema
import pluggy

from plugins import hookspecs
from plugins.tasktypes import TaskType

__all__ = [
    "DEFAULT_PLUGINS",
    "PluginInfo",
    "TaskTypeRegistry",
    "collect_task_types",
    "describe_plugins",
    "make_plugin_manager",
]

# Built-in task types are plugins like any other, loaded by module name.
DEFAULT_PLUGINS = (
    "plugins.builtin.output",
    "plugins.builtin.shell",
    "plugins.builtin.python",
    "plugins.builtin.container",
)

_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")


class TaskTypeRegistry(Mapping[str, TaskType]):
    """The task types every plugin registered, by name; validates each on the way in."""

    def __init__(self) -> None:
        self._types: dict[str, TaskType] = {}

    def register(self, task_type: TaskType) -> None:
        if not isinstance(task_type, TaskType):
            raise ValueError(f"register() takes a TaskType, got {type(task_type).__name__}")
        if not _NAME.match(task_type.name):
            raise ValueError(f"task type name {task_type.name!r} must match {_NAME.pattern}")
        if task_type.name in self._types:
            raise ValueError(f"task type {task_type.name!r} is registered twice")
        try:
            jsonschema.Draft202012Validator.check_schema(task_type.payload_schema)
        except jsonschema.SchemaError as exc:
            raise ValueError(
                f"task type {task_type.name!r} has an invalid payload_schema: {exc.message}"
            ) from None
        self._types[task_type.name] = task_type

    def __getitem__(self, name: str) -> TaskType:
        return self._types[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._types))

    def __len__(self) -> int:
        return len(self._types)


def make_plugin_manager(
    extra_plugins: Iterable[object] = (),
    *,
    load_entry_points: bool = True,
    disabled: Iterable[str] = (),
) -> pluggy.PluginManager:
    """The built-in plugins, then the ``homerun`` entry points, then ``extra_plugins``.

    ``disabled`` names plugins (a built-in's module name, an entry point's name) that are
    not loaded at all. Raises ``pluggy.PluginValidationError`` for a hook implementation
    that matches none of homerun's hooks.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for name in disabled:
        pm.set_blocked(name)
    for name in DEFAULT_PLUGINS:
        if not pm.is_blocked(name):
            pm.register(importlib.import_module(name), name=name)
    if load_entry_points:
        pm.load_setuptools_entrypoints(hookspecs.PROJECT_NAME)
    for plugin in extra_plugins:
        pm.register(plugin)
    _check_hook_names(pm)
    return pm


def _hook_names(pm: pluggy.PluginManager) -> list[str]:
    return sorted(
        name
        for name, caller in vars(pm.hook).items()
        if isinstance(caller, pluggy.HookCaller) and caller.spec is not None
    )


def _check_hook_names(pm: pluggy.PluginManager) -> None:
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise pluggy.PluginValidationError(
            exc.plugin, f"{exc}; homerun's hooks are: {', '.join(_hook_names(pm))}"
        ) from None


def collect_task_types(pm: pluggy.PluginManager) -> TaskTypeRegistry:
    registry = TaskTypeRegistry()
    pm.hook.register_task_types(register=registry.register)
    return registry


@dataclass(frozen=True)
class PluginInfo:
    """One loaded plugin, as ``homerun plugins`` lists it."""

    name: str  # what HOMERUN_DISABLED_PLUGINS calls it
    package: str | None  # the installed distribution it comes from (None: not installed)
    version: str | None
    task_types: tuple[str, ...]  # the task types it registers
    hooks: tuple[str, ...]  # the hooks it implements


def describe_plugins(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """Every plugin ``pm`` loaded, in load order, with its package and task types.

    The task types are first collected together, as a service does, so that whatever would
    stop a service from starting (say, a name registered twice) is raised here too.
    """
    collect_task_types(pm)
    packages = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    infos = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:  # blocked: disabled
            continue
        if name in DEFAULT_PLUGINS:
            package, version = "homerun", _installed_version("homerun")
        elif id(plugin) in packages:
            dist = packages[id(plugin)]
            package, version = str(dist.project_name), str(dist.version)
        else:
            package, version = None, None
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or ())
        infos.append(PluginInfo(name, package, version, _task_types_of(pm, plugin), tuple(hooks)))
    return infos


def _task_types_of(pm: pluggy.PluginManager, plugin: object) -> tuple[str, ...]:
    others = [p for p in pm.get_plugins() if p is not plugin]
    registry = TaskTypeRegistry()
    pm.subset_hook_caller("register_task_types", remove_plugins=others)(register=registry.register)
    return tuple(registry)


def _installed_version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        return None
