"""homerun's public surface for plugin authors: ``@homerun.hookimpl`` and the types a hook uses."""

from __future__ import annotations

from plugins.hookspecs import hookimpl
from plugins.tasktypes import (
    HOMERUN_DIR,
    INPUT_FILE,
    INPUTS_DIR,
    OUTPUT_FILE,
    ContainerSpec,
    FinishedRun,
    Limits,
    NetworkPolicy,
    PayloadError,
    TaskContext,
    TaskType,
)

__all__ = [
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
