"""The ``python`` task type: Python 3 code with a JSON input file and a JSON output file."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Final

from plugins.builtin.schemas import ENV_SCHEMA, MAX_SOURCE_CHARS, env_of, payload_schema, utf8
from plugins.hookspecs import hookimpl
from plugins.tasktypes import HOMERUN_DIR, INPUT_FILE, ContainerSpec, TaskContext, TaskType

NAME: Final = "python"
IMAGE: Final = "homerun/task-python:0.1.0"
CODE_FILE: Final = f"{HOMERUN_DIR}/task.py"

PAYLOAD_SCHEMA: Final = payload_schema(
    "python task payload",
    {
        "code": {
            "type": "string",
            "description": "Python 3.11 source, run as a script with the standard library only.",
            "minLength": 1,
            "maxLength": MAX_SOURCE_CHARS,
        },
        "input": {
            "description": "Any JSON value, written to /homerun/input.json for the code to read.",
        },
        "env": ENV_SCHEMA,
    },
    required=["code"],
)


def build_spec(payload: Mapping[str, Any], ctx: TaskContext) -> ContainerSpec:
    # The code reads its own input, not the payload that carries its source: input.json holds
    # ``payload["input"]`` (null when absent, so reading it never fails).
    # ensure_ascii keeps the file valid UTF-8 whatever the input holds (lone surrogates too).
    input_json = json.dumps(payload.get("input"), ensure_ascii=True).encode("ascii")
    return ContainerSpec(
        image=IMAGE,
        # -u: output reaches the log as it happens, so a time-out still shows what ran;
        # -B: no .pyc written into a read-only root.
        argv=["python3", "-u", "-B", CODE_FILE],
        env=env_of(payload),
        files={CODE_FILE: utf8(payload["code"], ("code",)), INPUT_FILE: input_json},
        workdir=HOMERUN_DIR,
    )


TASK_TYPE: Final = TaskType(
    name=NAME,
    description=(
        "Run Python 3 code (standard library, no network). payload.input is readable as JSON at"
        " /homerun/input.json, each upstream task's output at /homerun/inputs/<task>.json; JSON"
        " written to /homerun/output.json becomes the output."
    ),
    payload_schema=PAYLOAD_SCHEMA,
    build_spec=build_spec,
)


@hookimpl
def register_task_types(register: Callable[[TaskType], None]) -> None:
    register(TASK_TYPE)
