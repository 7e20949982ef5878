"""Builds the plugin manager: built-in task types, then third-party ones by entry point."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Iterator, Mapping
from types import ModuleType

import jsonschema
import pluggy

from plugins import hookspecs
from plugins.tasktypes import TaskType

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
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        module: ModuleType = importlib.import_module(name)
        pm.register(module, name=name)
    if load_entry_points:
        pm.load_setuptools_entrypoints(hookspecs.PROJECT_NAME)
    for plugin in extra_plugins:
        pm.register(plugin)
    for name in disabled:
        plugin = pm.get_plugin(name)
        if plugin is not None:
            pm.unregister(plugin)
    return pm


def collect_task_types(pm: pluggy.PluginManager) -> TaskTypeRegistry:
    registry = TaskTypeRegistry()
    pm.hook.register_task_types(register=registry.register)
    return registry
