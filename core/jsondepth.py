"""How deep the JSON homerun stores may nest: one bound, checked where task output enters and
honoured where stored JSON is read back.

Why a bound at all: Python's ``json`` (and msgspec) decode and encode recursively, and the
interpreter's recursion limit (1,000 frames) is shared with the frames of whoever calls
them. A runner parsed a 960-deep ``output.json`` near the bottom of its stack, Postgres
stored it (jsonb nests far deeper), and every API read of it, already some 100 frames deep
inside uvicorn and Starlette, raised ``RecursionError``: each GET of that job answered 500,
for good. ``MAX_JSON_DEPTH`` is far below the recursion limit, so JSON within it decodes and
encodes at any stack depth the services reach.

- Where output enters: ``runners.outcome`` refuses an output deeper than the bound (the
  attempt fails with a clear error, like any other bad output), so it is never stored.
- Where it is read: ``core.views`` asks Postgres (``too_deep_sql``) whether a stored output
  is within the bound before decoding it, so the verdict never depends on the caller's
  stack; rows stored before the bound existed are answered without their output, never
  with a 500.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_JSON_DEPTH", "TOO_DEEP", "exceeds_depth", "too_deep_sql"]

# Arrays and objects inside each other: ``[]`` is 1 deep, ``{"a": [1]}`` 2. Real task
# output rarely passes 10; 64 leaves the stack budget (~1,000 frames) well alone.
MAX_JSON_DEPTH = 64


# What a value past the bound is said to do, wherever it is refused or left out.
TOO_DEEP = f"nests more than {MAX_JSON_DEPTH} arrays or objects deep"


def exceeds_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a decoded JSON value nests more than ``limit`` deep (walked without recursion)."""
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth + 1 > limit:
            return True
        pending.extend(
            (child, depth + 1) for child in children if isinstance(child, dict | list | tuple)
        )
    return False


def too_deep_sql(column: str) -> str:
    """A SQL boolean: whether the jsonb ``column`` nests more than ``MAX_JSON_DEPTH`` deep.

    Asked of Postgres so that a stored value is judged before it reaches Python (decoding
    it to find out is what fails), in C, for a few ms per MB: ``.**{N}`` is every item N
    levels below the root, and a container there holds a level N + 1.
    """
    path = f'strict $.**{{{MAX_JSON_DEPTH}}} ? (@.type() == "array" || @.type() == "object")'
    return f"jsonb_path_exists({column}, '{path}')"
