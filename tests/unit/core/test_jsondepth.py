"""The one bound on JSON nesting (``core.jsondepth``), measured on decoded values."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.jsondepth import MAX_JSON_DEPTH, exceeds_depth


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ('"[[[["', 0),
        ("[]", 1),
        ('{"a": [1, {"b": null}]}', 3),
        ('[[1], [2], [3], {"a": {}}]', 3),  # siblings do not add up
        ("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH, MAX_JSON_DEPTH),
    ],
)
def test_the_depth_counts_arrays_and_objects_inside_each_other(text: str, depth: int) -> None:
    value = json.loads(text)
    assert exceeds_depth(value, depth) is False
    if depth > 0:
        assert exceeds_depth(value, depth - 1) is True


def test_a_wide_flat_value_is_not_deep() -> None:
    assert exceeds_depth([{"n": n, "tags": ["a", "b"]} for n in range(20_000)]) is False


def test_a_deep_value_is_measured_without_recursion() -> None:
    value: Any = []
    for _ in range(100_000):  # far past the interpreter's recursion limit
        value = [value]
    assert exceeds_depth(value) is True
