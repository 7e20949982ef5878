"""What Postgres can store: the one home of the rules a value must meet to be written.

A task's output is JSON the task chose, and a JSON parser accepts more than ``jsonb`` does:
``{"a": "\\u0000"}`` (jsonb holds no NUL), a lone surrogate such as ``"\\ud800"`` (not
Unicode text), ``1e400`` (Python reads it as infinity, which JSON has no form for). A
plugin's ``task_output`` hook may return even less: NaN, a set, a list that contains
itself. ``check_json`` finds the first such part and says where it is, so the runner can
fail the attempt with that message instead of handing Postgres a value it refuses;
``text`` makes a string fit a ``text`` column whatever it holds.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["NotStorable", "check_json", "text"]

# json.dumps cannot write an int of more digits than Python's default int-to-str limit.
MAX_INT_DIGITS = 4300
_INT_BOUND = 10**MAX_INT_DIGITS
# How much of an odd key a path quotes; the rest is elided.
_KEY_CHARS = 40
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# NUL, and surrogates (paired or not: a str holding one cannot be encoded as UTF-8).
_UNSTORABLE_CHARS = re.compile("[\x00\ud800-\udfff]")


class NotStorable(ValueError):
    """A part of a value Postgres cannot store: ``str(exc)`` says which part and why."""


def check_json(value: Any) -> None:
    """Raise ``NotStorable`` for the first part of ``value`` (in document order, a key
    before its value) that ``jsonb`` cannot hold; return if all of it can.

    Walks without recursion, so a deeply nested value is judged rather than crashing the
    walk (bounding depth is another rule's business).
    """
    todo: list[_Value | _Key | int] = [_Value(value, "$")]  # an int: leave that container
    ancestors: set[int] = set()
    while todo:
        entry = todo.pop()
        if isinstance(entry, int):
            ancestors.discard(entry)
        elif isinstance(entry, _Key):
            entry.check()
        elif isinstance(entry.item, dict | list | tuple):
            item, where = entry.item, entry.where
            kind = "object" if isinstance(item, dict) else "array"
            if id(item) in ancestors:
                raise NotStorable(f"the {kind} at {where} contains itself")
            ancestors.add(id(item))
            todo.append(id(item))
            todo.extend(reversed(_children(item, where)))
        else:
            entry.check()


@dataclass(frozen=True)
class _Key:
    key: Any
    where: str  # of the object holding it

    def check(self) -> None:
        if not isinstance(self.key, str):
            raise NotStorable(f"a key at {self.where} is a {type(self.key).__name__}, not a string")
        problem = _text_problem(self.key)
        if problem is not None:
            raise NotStorable(f"a key at {self.where} {problem}")


@dataclass(frozen=True)
class _Value:
    item: Any
    where: str

    def check(self) -> None:
        """A scalar's rules (containers are walked by ``check_json``)."""
        item, where = self.item, self.where
        if item is None or isinstance(item, bool):
            return
        if isinstance(item, int):
            if abs(item) >= _INT_BOUND:
                raise NotStorable(f"the integer at {where} has more than {MAX_INT_DIGITS} digits")
        elif isinstance(item, float):
            if math.isnan(item):
                raise NotStorable(f"the number at {where} is not a number (NaN)")
            if math.isinf(item):
                raise NotStorable(
                    f"the number at {where} is too large for a double (it reads as infinity)"
                )
        elif isinstance(item, str):
            problem = _text_problem(item)
            if problem is not None:
                raise NotStorable(f"the string at {where} {problem}")
        else:
            raise NotStorable(f"the value at {where} is a {type(item).__name__}, not JSON")


def _children(
    item: dict[Any, Any] | list[Any] | tuple[Any, ...], where: str
) -> list[_Value | _Key]:
    if not isinstance(item, dict):
        return [_Value(child, f"{where}[{n}]") for n, child in enumerate(item)]
    found: list[_Value | _Key] = []
    for key, child in item.items():
        found.append(_Key(key, where))
        # A key that is no str is refused before its value is reached: any path will do.
        found.append(_Value(child, where + (_step(key) if isinstance(key, str) else "[?]")))
    return found


def _step(key: str) -> str:
    if len(key) <= _KEY_CHARS and _NAME.fullmatch(key):
        return f".{key}"
    shown = key if len(key) <= _KEY_CHARS else key[:_KEY_CHARS] + "..."
    return f"[{_quoted(shown)}]"


def _quoted(s: str) -> str:
    # ASCII-only, every odd character escaped: the message is itself storable.
    return json.dumps(s, ensure_ascii=True)


def _text_problem(s: str) -> str | None:
    if "\x00" in s:
        return "holds the NUL character (\\u0000)"
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"holds a lone surrogate (\\u{ord(s[exc.start]):04x})"
    return None


def text(s: str) -> str:
    """``s`` as a ``text`` column holds it: NUL and lone surrogates become U+FFFD."""
    return _UNSTORABLE_CHARS.sub("\ufffd", s)
