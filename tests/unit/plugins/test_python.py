from __future__ import annotations

import json

import pytest

from plugins.builtin import python
from plugins.tasktypes import INPUT_FILE, NetworkPolicy, PayloadError

from .helpers import build, errors


def test_spec_runs_the_code_from_a_file_with_its_input() -> None:
    payload = {"code": "print(1)", "input": {"n": [1, 2]}, "env": {"MODE": "fast"}}
    spec = build(python.TASK_TYPE, payload)
    assert spec.image == "homerun/task-python:0.1.0"
    assert list(spec.argv) == ["python3", "-u", "-B", python.CODE_FILE]
    assert spec.files[python.CODE_FILE] == b"print(1)"
    assert json.loads(spec.files[INPUT_FILE]) == {"n": [1, 2]}
    assert spec.env == {"MODE": "fast"}
    assert spec.network is NetworkPolicy.NONE


def test_input_file_is_null_when_the_payload_has_no_input() -> None:
    spec = build(python.TASK_TYPE, {"code": "pass"})
    assert json.loads(spec.files[INPUT_FILE]) is None


@pytest.mark.parametrize("value", [None, 0, "text", [1, "two"], {"nested": {"a": None}}, True])
def test_any_json_input_round_trips(value: object) -> None:
    spec = build(python.TASK_TYPE, {"code": "pass", "input": value})
    assert json.loads(spec.files[INPUT_FILE]) == value


def test_input_with_a_lone_surrogate_still_writes_valid_utf8() -> None:
    spec = build(python.TASK_TYPE, {"code": "pass", "input": "\ud800"})
    raw = spec.files[INPUT_FILE]
    raw.decode("utf-8")
    assert json.loads(raw) == "\ud800"


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"code": ""},
        {"code": ["print(1)"]},
        {"input": 1},
        {"code": "pass", "script": "echo"},
        {"code": "pass", "env": {"HOMERUN_X": "1"}},
    ],
)
def test_schema_refuses(payload: object) -> None:
    assert errors(python.TASK_TYPE, payload)


def test_code_with_a_lone_surrogate_is_a_payload_error() -> None:
    with pytest.raises(PayloadError) as exc:
        build(python.TASK_TYPE, {"code": "x = '\udc80'"})
    assert exc.value.loc == ("code",)
