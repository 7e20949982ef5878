"""The fallback ``task_output`` hook: a task's output is the JSON it wrote to output.json."""

from __future__ import annotations

import json

from plugins.hookspecs import hookimpl
from plugins.tasktypes import JSON, OUTPUT_FILE, FinishedRun, PayloadError


def _refuse_constant(name: str) -> JSON:
    # Python's json accepts NaN and Infinity; JSON (and Postgres jsonb) do not.
    raise ValueError(f"{name} is not a JSON value")


def parse_output_file(raw: bytes) -> JSON:
    """Parse the bytes of ``/homerun/output.json``; ``PayloadError`` says what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(
            f"{OUTPUT_FILE} is not UTF-8 (byte {exc.start}): write JSON text"
        ) from None
    if not text.strip():
        raise PayloadError(f"{OUTPUT_FILE} is empty: write a JSON value, or no file")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        # A hostile task can nest arrays deeper than the parser's recursion limit.
        raise PayloadError(f"{OUTPUT_FILE} nests too deeply to parse") from None
    except json.JSONDecodeError as exc:
        raise PayloadError(
            f"{OUTPUT_FILE} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            ("output",),
        ) from None
    except ValueError as exc:
        raise PayloadError(f"{OUTPUT_FILE} is not valid JSON: {exc}") from None


@hookimpl(trylast=True)
def task_output(run: FinishedRun) -> JSON | None:
    """Every task type's default: the parsed output file, or ``None`` when none was written.

    ``trylast`` so that a plugin's own hook for its task type answers first.
    """
    if run.output_file is None:
        return None
    return parse_output_file(run.output_file)
