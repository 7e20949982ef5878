"""What Postgres can store (``core.storable``): each value jsonb refuses, and where it is."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.storable import MAX_INT_DIGITS, NotStorable, check_json, text
from plugins.builtin.output import parse_output_file


def cyclic_list() -> list[Any]:
    value: list[Any] = [1]
    value.append(value)
    return value


def cyclic_dict() -> dict[str, Any]:
    value: dict[str, Any] = {}
    value["me"] = {"again": value}
    return value


REFUSED: list[tuple[Any, str]] = [
    ("\x00", r"the string at $ holds the NUL character (\u0000)"),
    ({"a": "x\x00y"}, r"the string at $.a holds the NUL character (\u0000)"),
    ({"a": ["ok", "\ud800"]}, r"the string at $.a[1] holds a lone surrogate (\ud800)"),
    ("\udfff tail", r"the string at $ holds a lone surrogate (\udfff)"),
    ({"n": float("inf")}, "the number at $.n is too large for a double (it reads as infinity)"),
    ([float("-inf")], "the number at $[0] is too large for a double (it reads as infinity)"),
    ({"n": float("nan")}, "the number at $.n is not a number (NaN)"),
    ({"\x00": 1}, r"a key at $ holds the NUL character (\u0000)"),
    ({"k": {"\ud800": 1}}, r"a key at $.k holds a lone surrogate (\ud800)"),
    ({1: "x"}, "a key at $ is a int, not a string"),
    ({"s": {1}}, "the value at $.s is a set, not JSON"),
    ({"b": b"x"}, "the value at $.b is a bytes, not JSON"),
    ({"n": 10**MAX_INT_DIGITS}, f"the integer at $.n has more than {MAX_INT_DIGITS} digits"),
    (cyclic_list(), "the array at $[1] contains itself"),
    (cyclic_dict(), "the object at $.me.again contains itself"),
    # Where a key is no plain name, the path quotes it, escaped and cut short.
    ({"a b": [None, "\x00"]}, r'the string at $["a b"][1] holds the NUL character (\u0000)'),
    ({"é\ud800": {"x": "\x00"}}, r"a key at $ holds a lone surrogate (\ud800)"),
    ({"\u00e9": {"x": "\x00"}}, r'the string at $["\u00e9"].x holds the NUL character (\u0000)'),
    (
        {"k" * 50: "\x00"},
        r'the string at $["' + "k" * 40 + r'..."] holds the NUL character (\u0000)',
    ),
]


@pytest.mark.parametrize(("value", "says"), REFUSED)
def test_what_jsonb_refuses_is_named_with_its_place(value: Any, says: str) -> None:
    with pytest.raises(NotStorable) as caught:
        check_json(value)
    assert str(caught.value) == says
    # The message itself goes into a text column: ASCII, no NUL.
    assert str(caught.value).isascii() and "\x00" not in str(caught.value)


@pytest.mark.parametrize(
    ("value", "first"),
    [
        ([{"a": 1, "b": "\x00"}, "\x00"], "the string at $[0].b"),
        ({"a": "\x00", "\x00": 1}, "the string at $.a"),  # a value before a later key
        ({"\x00": "\x00"}, "a key at $"),  # a key before its own value
    ],
)
def test_the_first_problem_in_document_order_is_the_one_named(value: Any, first: str) -> None:
    with pytest.raises(NotStorable) as caught:
        check_json(value)
    assert str(caught.value).startswith(first)


STORED: list[Any] = [
    None,
    True,
    0,
    -(10 ** (MAX_INT_DIGITS - 1)),
    1.5e308,
    -0.0,
    "",
    json.loads(r'"\ud83d\ude00"'),  # an escaped pair is one code point once parsed
    "a \\u0000 written out is six characters, not a NUL",
    {"nested": [[[[{"ok": [1, 2.5, "x", None, False]}]]]]},
    (1, 2),
]


@pytest.mark.parametrize("value", STORED)
def test_what_jsonb_holds_passes(value: Any) -> None:
    check_json(value)


def test_a_shared_value_is_no_cycle() -> None:
    shared = {"x": 1}
    check_json([shared, shared, {"again": shared}])


def test_deep_nesting_is_walked_without_recursion() -> None:
    deep: Any = "\x00"
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(NotStorable, match="holds the NUL character"):
        check_json(deep)


@pytest.mark.parametrize(
    ("raw", "refused"),
    [
        (rb'{"a": "\u0000"}', True),
        (rb'["\ud800"]', True),
        (rb"1e400", True),
        (rb"-1e400", True),
        (rb'"\ud83d\ude00"', False),  # a pair: one code point once parsed
        (rb"1e308", False),
    ],
)
def test_what_output_json_parses_to_is_judged(raw: bytes, refused: bool) -> None:
    # The hostile outputs of issue 12 item 4 all parse; only the check tells them apart.
    value = parse_output_file(raw)
    if refused:
        with pytest.raises(NotStorable):
            check_json(value)
    else:
        check_json(value)


def test_text_makes_any_string_fit_a_text_column() -> None:
    assert text("a\x00b\ud800c") == "a\ufffdb\ufffdc"
    assert text("plain é") == "plain é"
    text("\ud83d").encode("utf-8")
