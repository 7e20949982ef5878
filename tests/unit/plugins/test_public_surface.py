"""homerun's plugin-author surface is deliberate: adding or dropping a name fails here."""

from __future__ import annotations

import homerun
import plugins.hookspecs
import plugins.tasktypes

PUBLIC = [
    "HOMERUN_DIR",
    "INPUTS_DIR",
    "INPUT_FILE",
    "OUTPUT_FILE",
    "ContainerSpec",
    "FinishedRun",
    "Limits",
    "NetworkPolicy",
    "PayloadError",
    "TaskContext",
    "TaskType",
    "hookimpl",
]


def test_all_is_pinned() -> None:
    assert homerun.__all__ == PUBLIC


def test_every_public_name_is_the_implementation_itself() -> None:
    for name in PUBLIC:
        source = plugins.hookspecs if name == "hookimpl" else plugins.tasktypes
        assert getattr(homerun, name) is getattr(source, name), name


def test_hookimpl_marks_for_the_homerun_project() -> None:
    assert homerun.hookimpl.project_name == "homerun"


def test_star_import_exports_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from homerun import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(PUBLIC)
