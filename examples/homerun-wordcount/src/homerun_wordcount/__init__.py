"""An example homerun plugin: the ``wordcount`` task type.

It shows both hooks. ``register_task_types`` contributes a task type that runs a tiny
counting program in homerun's python image; ``task_output`` turns what that program printed
into the task's output JSON, for this task type only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import homerun

NAME: Final = "wordcount"
IMAGE: Final = "homerun/task-python:0.1.0"
TEXT_FILE: Final = f"{homerun.HOMERUN_DIR}/text.txt"
PROGRAM_FILE: Final = f"{homerun.HOMERUN_DIR}/wordcount.py"
MAX_TEXT_CHARS: Final = 100_000

# What runs inside the container. It only reads the file the spec places and prints one line;
# turning that line into JSON is the task_output hook's job, so the parsing is unit-testable
# without a container.
PROGRAM: Final = f"""\
with open({TEXT_FILE!r}, encoding="utf-8") as f:
    text = f.read()
print(f"words={{len(text.split())}} lines={{len(text.splitlines())}} characters={{len(text)}}")
"""

COUNTS: Final = re.compile(r"^words=(\d+) lines=(\d+) characters=(\d+)$", re.MULTILINE)

PAYLOAD_SCHEMA: Final[Mapping[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "wordcount task payload",
    "type": "object",
    "properties": {
        "text": {"type": "string", "maxLength": MAX_TEXT_CHARS, "description": "What to count."}
    },
    "required": ["text"],
    "additionalProperties": False,
}


def build_spec(payload: Mapping[str, Any], ctx: homerun.TaskContext) -> homerun.ContainerSpec:
    text: str = payload["text"]
    try:
        text_bytes = text.encode("utf-8")
    except UnicodeEncodeError:
        # JSON can carry a lone surrogate ("\ud800"); no file can.
        raise homerun.PayloadError("text is not valid Unicode", ("text",)) from None
    return homerun.ContainerSpec(
        image=IMAGE,
        argv=["python3", "-B", PROGRAM_FILE],
        files={PROGRAM_FILE: PROGRAM.encode("utf-8"), TEXT_FILE: text_bytes},
        # Counting needs little: ask for less than homerun's defaults.
        limits=homerun.Limits(memory_bytes=64 * 1024 * 1024, cpus=0.5, pids=16),
        timeout_s=30,
    )


def parse_counts(stdout: str) -> dict[str, int]:
    """The counts the program printed; ``PayloadError`` if it printed something else."""
    match = COUNTS.search(stdout)
    if match is None:
        raise homerun.PayloadError(f"wordcount printed no counts: {stdout[:200]!r}")
    words, lines, characters = (int(group) for group in match.groups())
    return {"words": words, "lines": lines, "characters": characters}


@homerun.hookimpl
def register_task_types(register: Callable[[homerun.TaskType], None]) -> None:
    register(
        homerun.TaskType(
            name=NAME,
            description="Count the words, lines and characters of a text.",
            payload_schema=PAYLOAD_SCHEMA,
            build_spec=build_spec,
        )
    )


@homerun.hookimpl
def task_output(run: homerun.FinishedRun) -> dict[str, int] | None:
    # firstresult: answer for our own task type only, and let every other type fall through.
    if run.task_type != NAME:
        return None
    if run.exit_code != 0:
        # The run failed already; its exit code and stderr say why, not a parse error.
        return None
    return parse_counts(run.stdout)
