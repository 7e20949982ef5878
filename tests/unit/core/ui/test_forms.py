"""The submit form generated from payload schemas, read back, and the API's errors placed."""

from __future__ import annotations

import pytest

from core.errors import ApiError
from core.settings import Settings
from core.ui import forms
from core.validation import JobSchemas, JobValidator
from plugins.builtin import container, python, shell
from wire import ErrorDetail, TaskTypeInfo

TYPES = [
    TaskTypeInfo(name="shell", description="sh", payload_schema=dict(shell.PAYLOAD_SCHEMA)),
    TaskTypeInfo(name="python", description="py", payload_schema=dict(python.PAYLOAD_SCHEMA)),
    TaskTypeInfo(name="container", description="c", payload_schema=dict(container.PAYLOAD_SCHEMA)),
    TaskTypeInfo(
        name="odd",
        description="every kind",
        payload_schema={
            "type": "object",
            "required": ["n"],
            "properties": {
                "n": {"type": "integer"},
                "ratio": {"type": "number"},
                "on": {"type": "boolean"},
                "mode": {"enum": ["a", "b"]},
                "inner": {"type": "object", "properties": {"depth": {"type": "integer"}}},
                "anything": {},
            },
        },
    ),
]


SCHEMAS = JobSchemas.for_settings(Settings())


def _form(chosen: list[str]) -> forms.Form:
    return forms.job_form(SCHEMAS.submission, SCHEMAS.task, TYPES, chosen)


def _kinds(form: forms.Form) -> dict[str, str]:
    return {f.key: f.kind for f in form.all_fields()}


def test_each_schema_shape_gets_its_field() -> None:
    form = _form(["shell", "container", "odd", "nonesuch"])
    kinds = _kinds(form)
    assert [t.type for t in form.tasks] == ["shell", "container", "odd"]
    assert kinds["t0.p.script"] == "textarea"
    assert kinds["t0.p.env"] == "pairs"
    assert kinds["t1.p.image"] == "text"
    assert kinds["t1.p.argv"] == "lines"
    assert kinds["t2.p.n"] == "number"
    assert kinds["t2.p.on"] == "boolean"
    assert kinds["t2.p.mode"] == "choice"
    assert kinds["t2.p.inner"] == "group"
    assert kinds["t2.p.inner.depth"] == "number"
    assert kinds["t2.p.anything"] == "json"
    # The envelope's fields come from the API's submission schema too.
    assert kinds["name"] == "text"
    assert kinds["labels"] == "pairs"
    assert kinds["keep"] == "boolean"
    assert kinds["t0.depends_on"] == "lines"
    assert kinds["t0.max_attempts"] == "number"
    assert kinds["t0.timeout_s"] == "number"
    assert kinds["t0.network"] == "choice"
    assert kinds["t0.secrets"] == "lines"
    assert kinds["t0.resources.memory_mb"] == "number"
    assert kinds["t0.map.over_items"] == "json"
    assert [f.label for f in form.tasks[0].first] == ["name", "depends_on"]
    assert "type" not in {f.label for f in form.tasks[0].fields}
    required = {f.key for f in form.all_fields() if f.required}
    assert {"t0.p.script", "t1.p.image", "t1.p.argv", "t2.p.n"} <= required


def test_a_posted_form_is_the_job_body() -> None:
    form = _form(["shell", "container", "odd"])
    posted = {
        "name": "nightly",
        "labels": "team=data\r\nenv=prod",
        "t0.name": "a",
        "t0.p.script": "echo 1\r\necho 2",
        "t0.p.env": "",
        "t1.name": "b",
        "t1.depends_on": "a",
        "t1.max_attempts": "2",
        "t1.resources.memory_mb": "64",
        "t1.p.image": "alpine:3",
        "t1.p.argv": "echo\r\nhi\r\n",
        "t2.name": "c",
        "t2.depends_on": "a\r\nb",
        "t2.map.over_items": "[1, 2]",
        "t2.p.n": "3",
        "t2.p.ratio": "0.5",
        "t2.p.on": "false",
        "t2.p.mode": "",
        "t2.p.inner.depth": "2",
        "t2.p.anything": '{"k": [1]}',
    }
    reading = forms.job_body(form, posted)
    assert reading.errors == {}
    assert reading.body == {
        "name": "nightly",
        "labels": {"team": "data", "env": "prod"},
        "tasks": [
            {"type": "shell", "name": "a", "payload": {"script": "echo 1\necho 2"}},
            {
                "type": "container",
                "name": "b",
                "depends_on": ["a"],
                "max_attempts": 2,
                "resources": {"memory_mb": 64},
                "payload": {"image": "alpine:3", "argv": ["echo", "hi"]},
            },
            {
                "type": "odd",
                "name": "c",
                "depends_on": ["a", "b"],
                "map": {"over_items": [1, 2]},
                "payload": {
                    "n": 3,
                    "ratio": 0.5,
                    "on": False,
                    "inner": {"depth": 2},
                    "anything": {"k": [1]},
                },
            },
        ],
    }


def test_what_the_form_cannot_shape_is_an_error_at_its_field() -> None:
    form = _form(["shell", "odd"])
    reading = forms.job_body(
        form, {"t0.p.env": "NOEQUALS", "t1.p.anything": "{oops", "t1.p.n": "three"}
    )
    assert set(reading.errors) == {"t0.p.env", "t1.p.anything"}
    # Not a number: handed on as typed, for the API to judge (and name).
    assert reading.body["tasks"][1]["payload"]["n"] == "three"


def test_the_apis_errors_land_on_the_fields_they_name() -> None:
    form = _form(["shell", "container"])
    details = [
        ErrorDetail(["body", "tasks", 0, "name"], "bad name"),
        ErrorDetail(["body", "tasks", 1, "payload", "argv", 0], "empty"),
        ErrorDetail(["body", "tasks", 1, "payload"], "'image' is a required property"),
        ErrorDetail(["body", "tasks", 1, "max_attempts"], "too many"),
        ErrorDetail(["body", "tasks", 1, "type"], "unknown"),
        ErrorDetail(["header", "Idempotency-Key"], "reused"),
    ]
    placed, loose = forms.place_errors(form, details)
    assert placed == {
        "t0.name": ["bad name"],
        "t1.p.argv": ["0: empty"],
        "t1.p": ["'image' is a required property"],
        "t1.max_attempts": ["too many"],
        "t1": ["type: unknown"],
    }
    assert loose == ["header.Idempotency-Key: reused"]


@pytest.mark.parametrize(
    ("posted", "field"),
    [
        ({"t0.name": "bad name", "t0.p.script": "true"}, "t0.name"),
        ({"t0.name": "a", "t0.p.script": "true", "t0.p.env": "HOMERUN_X=1"}, "t0.p.env"),
        ({"t0.name": "a"}, "t0.p"),
        ({"t0.name": "a", "t0.p.script": "true", "t0.depends_on": "zz"}, "t0.depends_on"),
        ({"t0.p.script": "true", "t0.max_attempts": "x"}, "t0.max_attempts"),
        ({"t0.p.script": "true", "keep": "maybe"}, "keep"),
    ],
)
def test_a_real_validation_error_names_a_form_field(posted: dict[str, str], field: str) -> None:
    """The locs the API's own validator gives are ones the form has fields for."""
    form = _form(["shell"])
    validator = JobValidator({"shell": shell.TASK_TYPE}, Settings())
    with pytest.raises(ApiError) as raised:
        validator.validate(forms.job_body(form, posted).body)
    placed, loose = forms.place_errors(form, raised.value.details)
    assert list(placed) == [field], (placed, loose)
    assert loose == []
