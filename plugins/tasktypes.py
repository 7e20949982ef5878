"""What a plugin hands homerun: task types, and the container spec each one builds.

These are plain dataclasses so that hooks stay pure: a plugin turns a payload into a
``ContainerSpec`` and never touches Docker; the runner owns the engine, time-outs and cleanup.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeAlias

# Defined here, with the rest of what a plugin sees, so that plugins/ depends on nothing in
# core/ (core depends on plugins); core.models re-exports it for core's own code.
JSON: TypeAlias = Any  # a value that survived json.loads

# Where the runner places things inside every task container.
HOMERUN_DIR = "/homerun"
INPUTS_DIR = f"{HOMERUN_DIR}/inputs"  # <upstream task name>.json, one per dependency
INPUT_FILE = f"{HOMERUN_DIR}/input.json"  # the task's own payload
OUTPUT_FILE = f"{HOMERUN_DIR}/output.json"  # what the task wants to hand downstream
# Files the task leaves here are collected after it exits (artifacts); a downstream task
# finds them read-only under INPUTS_DIR/<upstream task name>/.
ARTIFACTS_DIR = f"{HOMERUN_DIR}/artifacts"
# The small files the submission carried ("files": {name: base64}), read-only.
FILES_DIR = f"{HOMERUN_DIR}/files"
# A map instance's own entry in ``inputs`` (so INPUTS_DIR/_map.json): {"index", "item"}. No
# task name starts with '_', so it never meets an upstream task's.
MAP_INPUT = "_map"


class PayloadError(ValueError):
    """A payload a task type refuses. ``loc`` is the path inside the payload."""

    def __init__(self, message: str, loc: Sequence[str | int] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.loc = tuple(loc)


class NetworkPolicy(StrEnum):
    NONE = "none"  # no network interface but loopback: the default
    EGRESS = "egress"  # the allow-listing egress proxy only; only when settings allow it


@dataclass(frozen=True)
class Limits:
    memory_bytes: int = 256 * 1024 * 1024
    cpus: float = 1.0
    pids: int = 128
    tmpfs_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class ContainerSpec:
    """How to run one attempt of a task. Built by a task type, run by the runner."""

    image: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    # Absolute path inside the container -> contents. Placed before the container starts.
    files: Mapping[str, bytes] = field(default_factory=dict)
    workdir: str = HOMERUN_DIR
    limits: Limits = field(default_factory=Limits)
    network: NetworkPolicy = NetworkPolicy.NONE
    # Used when the task itself sets no timeout_s.
    timeout_s: int | None = None


@dataclass(frozen=True)
class TaskContext:
    """What a task type may know about the attempt it builds a spec for."""

    job_id: str
    task_id: str
    task_name: str
    attempt: int
    # Output JSON of each upstream task, by task name.
    inputs: Mapping[str, JSON] = field(default_factory=dict)
    # Images the operator allows for task types that take an image from the payload.
    allowed_images: Sequence[str] = ()


@dataclass(frozen=True)
class FinishedRun:
    """What a finished container left behind, handed to the ``task_output`` hook."""

    task_type: str
    exit_code: int | None
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    # Raw bytes of OUTPUT_FILE, or None when the task wrote none.
    output_file: bytes | None


@dataclass(frozen=True)
class TaskType:
    name: str
    description: str
    payload_schema: Mapping[str, Any]
    # Pure: payload (already valid against payload_schema) + context -> spec.
    # Raises PayloadError for what a schema cannot express.
    build_spec: Callable[[Mapping[str, Any], TaskContext], ContainerSpec]
