"""Job submission validation, without a database: names, graphs, payloads, messages."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest

from core import metrics
from core.errors import ApiError
from core.settings import Settings
from core.validation import JobValidator, find_cycle, parse_json, request_hash
from plugins.tasktypes import ContainerSpec, PayloadError, TaskContext, TaskType

SEEN: list[TaskContext] = []


def _build(payload: Mapping[str, Any], ctx: TaskContext) -> ContainerSpec:
    SEEN.append(ctx)
    if payload.get("image") == "forbidden":
        raise PayloadError("image not allowed", ("image",))
    if payload.get("image") == "crash":
        raise KeyError("bug in the plugin")
    return ContainerSpec(image="x", argv=["true"])


RUN = TaskType(
    name="run",
    description="test",
    payload_schema={
        "type": "object",
        "properties": {"image": {"type": "string"}, "n": {"type": "integer", "maximum": 3}},
        "additionalProperties": False,
    },
    build_spec=_build,
)


def validator(**settings: Any) -> JobValidator:
    return JobValidator({"run": RUN}, dataclasses.replace(Settings(), **settings))


def task(**fields: Any) -> dict[str, Any]:
    return {"type": "run", "payload": {}, **fields}


def refusal(body: Any, **settings: Any) -> ApiError:
    with pytest.raises(ApiError) as info:
        validator(**settings).validate(body)
    return info.value


@pytest.mark.parametrize(
    ("edges", "cycle"),
    [
        ({"a": [], "b": ["a"], "c": ["a", "b"]}, None),
        ({"a": ["a"]}, ["a", "a"]),
        ({"a": ["b"], "b": ["c"], "c": ["a"]}, ["a", "b", "c", "a"]),
        ({"x": [], "a": ["x", "b"], "b": ["c"], "c": ["b"]}, ["b", "c", "b"]),
        ({"top": ["l", "r"], "l": ["base"], "r": ["base"], "base": []}, None),
    ],
)
def test_find_cycle(edges: dict[str, list[str]], cycle: list[str] | None) -> None:
    assert find_cycle(edges) == cycle


def test_unnamed_tasks_get_free_positional_names_and_defaults() -> None:
    job = validator(default_max_attempts=4).validate(
        {"tasks": [task(name="task-2"), task(), task(depends_on=["task-2"], priority=-3)]}
    )
    assert [t.name for t in job.tasks] == ["task-2", "task-2-2", "task-3"]
    assert [t.max_attempts for t in job.tasks] == [4, 4, 4]
    assert job.tasks[2].priority == -3 and job.tasks[2].depends_on == ["task-2"]
    assert job.labels == {} and job.name is None and job.callback_url is None


def test_trial_build_sees_the_submission_context() -> None:
    SEEN.clear()
    validator(allowed_images=("busybox",)).validate(
        {"tasks": [task(name="a"), task(name="b", depends_on=["a"])]}
    )
    assert [c.task_name for c in SEEN] == ["a", "b"]
    assert SEEN[1].inputs == {"a": None} and SEEN[1].allowed_images == ("busybox",)


def test_every_problem_is_reported_with_its_location() -> None:
    error = refusal(
        {
            "tasks": [
                task(payload={"n": 9}),
                {"type": "nope", "payload": {}},
                task(name="x", payload={"image": "forbidden"}),
                task(name="x"),
            ]
        }
    )
    assert error.status == 422 and error.code == "validation_error"
    locs = {tuple(d.loc): d.msg for d in error.details}
    assert "9 is greater than the maximum of 3" in locs[("body", "tasks", 0, "payload", "n")]
    assert "unknown task type 'nope'" in locs[("body", "tasks", 1, "type")]
    assert locs[("body", "tasks", 2, "payload", "image")] == "image not allowed"
    assert "duplicate task name 'x' (also used by tasks[2])" in locs[("body", "tasks", 3, "name")]
    assert (
        error.message.startswith("body.tasks.0.payload.n: ") and "3 more problems" in error.message
    )


def test_nul_characters_are_refused_anywhere() -> None:
    error = refusal({"labels": {"k": "a\x00b"}, "tasks": [task(payload={"image": "\x00"})]})
    assert [d.loc for d in error.details] == [
        ["body", "labels", "k"],
        ["body", "tasks", 0, "payload", "image"],
    ]


def test_a_crashing_plugin_is_a_422_and_counted() -> None:
    before = (
        metrics.REGISTRY.get_sample_value("homerun_plugin_errors_total", {"task_type": "run"}) or 0
    )
    error = refusal({"tasks": [task(payload={"image": "crash"})]})
    assert "KeyError" in error.details[0].msg
    assert (
        metrics.REGISTRY.get_sample_value("homerun_plugin_errors_total", {"task_type": "run"})
        == before + 1
    )


def test_limits_come_from_settings() -> None:
    assert "is too long" in refusal({"tasks": [task(), task()]}, max_tasks_per_job=1).message
    big = refusal({"tasks": [task(payload={"image": "x" * 100})]}, max_payload_bytes=50)
    assert "the limit is 50" in big.details[0].msg


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"{", "line 1 column 2"),
        (b"\xc3\x28", "not UTF-8"),
        (b'{"a": Infinity}', "Infinity is not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_parse_json_errors(raw: bytes, says: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_json(raw)
    assert info.value.status == 400 and says in info.value.message


def test_request_hash_ignores_key_order_only() -> None:
    assert request_hash({"a": 1, "b": [1, 2]}) == request_hash({"b": [1, 2], "a": 1})
    assert request_hash({"a": 1, "b": [1, 2]}) != request_hash({"a": 1, "b": [2, 1]})
