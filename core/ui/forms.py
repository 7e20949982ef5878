"""The submit form, generated from JSON Schemas: the API's own submission envelope
(``core.validation.JobSchemas``) and the task types' payload schemas.

``job_form`` turns them into fields: the job's (name, labels, ...), and per task of the
chosen types its envelope's (name, ``depends_on``, then attempts, time-out, secrets, ...)
and one field per payload property (``GET /v1/task-types``), each chosen by the property's
schema (a string, a number, a choice, a list
of strings, a map of strings, a nested object; anything else is a JSON field). ``job_body``
reads a posted form back into the ``POST /v1/jobs`` body, and ``place_errors`` pins each
``details`` entry of the API's 422 on the field its ``loc`` names (the nearest enclosing
one). The API alone judges the body: the form only shapes it, so a value that is not a
number is handed on as typed and the API says what is wrong, where.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wire import ErrorDetail, TaskTypeInfo

__all__ = ["Field", "Form", "job_body", "job_form", "place_errors"]

Loc = tuple[str | int, ...]
# Strings that may be longer than this get a box (scripts, code); shorter ones a line.
LINE_CHARS = 4096


@dataclass(frozen=True)
class Field:
    key: str  # the form field's name, unique in the form
    label: str
    kind: str  # text, textarea, number, boolean, choice, lines, pairs, json, group
    loc: Loc  # where the API's errors about it point, under "body"
    required: bool = False
    description: str = ""
    integer: bool = False
    choices: tuple[str, ...] = ()
    children: tuple[Field, ...] = ()

    @property
    def id(self) -> str:
        return "f-" + self.key.replace(".", "-")


@dataclass(frozen=True)
class TaskPart:
    index: int
    type: str
    description: str
    first: tuple[Field, ...]  # its name and depends_on
    payload: Field  # the group generated from the task type's payload schema
    options: tuple[Field, ...]  # the rest of the task's envelope (attempts, time-out, ...)

    @property
    def fields(self) -> tuple[Field, ...]:
        return (*self.first, self.payload, *self.options)

    def invalid_options(self, errors: Mapping[str, Any]) -> bool:
        """Whether an error sits in the options (so the template shows them open)."""
        return any(k.startswith(tuple(f.key for f in self.options)) for k in errors)


@dataclass(frozen=True)
class Form:
    job_fields: tuple[Field, ...]
    tasks: tuple[TaskPart, ...]

    def all_fields(self) -> list[Field]:
        out: list[Field] = []
        stack = [*self.job_fields, *(f for t in self.tasks for f in t.fields)]
        while stack:
            f = stack.pop()
            out.append(f)
            stack.extend(f.children)
        return out


@dataclass
class Reading:
    """A form read back: the body, and problems with the form's own syntax, by field key."""

    body: dict[str, Any]
    errors: dict[str, list[str]] = field(default_factory=dict)


def _type_of(schema: Mapping[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    return kind if isinstance(kind, str) else None


def _property(key: str, name: str, schema: Mapping[str, Any], loc: Loc, required: bool) -> Field:
    common: dict[str, Any] = {
        "key": key,
        "label": name,
        "loc": loc,
        "required": required,
        "description": str(schema.get("description", "")),
    }
    kind = _type_of(schema)
    if isinstance(schema.get("enum"), list):
        return Field(kind="choice", choices=tuple(str(c) for c in schema["enum"]), **common)
    if kind == "string":
        long = schema.get("maxLength", LINE_CHARS + 1) > LINE_CHARS
        return Field(kind="textarea" if long else "text", **common)
    if kind in ("integer", "number"):
        return Field(kind="number", integer=kind == "integer", **common)
    if kind == "boolean":
        return Field(kind="boolean", **common)
    items = schema.get("items")
    if kind == "array" and isinstance(items, Mapping) and _type_of(items) == "string":
        return Field(kind="lines", **common)
    if kind == "object" and isinstance(schema.get("properties"), Mapping):
        return Field(kind="group", children=_properties(key, schema, loc), **common)
    extra = schema.get("additionalProperties")
    if kind == "object" and isinstance(extra, Mapping) and _type_of(extra) == "string":
        return Field(kind="pairs", **common)
    return Field(kind="json", **common)


def _properties(prefix: str, schema: Mapping[str, Any], loc: Loc) -> tuple[Field, ...]:
    required = set(schema.get("required", ()))
    return tuple(
        _property(f"{prefix}.{name}" if prefix else name, name, sub, (*loc, name), name in required)
        for name, sub in schema.get("properties", {}).items()
        if isinstance(sub, Mapping)
    )


# A task's envelope fields shown first; the rest of its schema goes under "More options".
TASK_FIRST = ("name", "depends_on")
# Set by the form's structure, not typed: the section's task type, and its payload group.
TASK_FIXED = ("type", "payload")


def job_form(
    submission: Mapping[str, Any],
    task: Mapping[str, Any],
    types: Sequence[TaskTypeInfo],
    chosen: Sequence[str],
) -> Form:
    """The form for a job of the ``chosen`` task types, in order (unknown names skipped).

    ``submission`` and ``task`` are the API's own envelope schemas (``JobSchemas``, what it
    validates with and ``/openapi.json`` publishes); each payload group is its task type's
    ``payload_schema``.
    """
    by_name = {t.name: t for t in types}
    job_props = {k: v for k, v in submission.get("properties", {}).items() if k != "tasks"}
    job_fields = _properties("", {**submission, "properties": job_props}, ())
    task_props: Mapping[str, Any] = task.get("properties", {})
    tasks = []
    for index, name in enumerate(n for n in chosen if n in by_name):
        info = by_name[name]
        loc: Loc = ("tasks", index)
        prefix = f"t{index}"
        envelope = _properties(
            prefix,
            {
                **task,
                "properties": {k: v for k, v in task_props.items() if k not in TASK_FIXED},
            },
            loc,
        )
        payload = Field(
            key=f"{prefix}.p",
            label="Payload",
            kind="group",
            loc=(*loc, "payload"),
            description=str(info.payload_schema.get("title", "")),
            children=_properties(f"{prefix}.p", info.payload_schema, (*loc, "payload")),
        )
        tasks.append(
            TaskPart(
                index=index,
                type=name,
                description=info.description,
                first=tuple(f for f in envelope if f.label in TASK_FIRST),
                payload=payload,
                options=tuple(f for f in envelope if f.label not in TASK_FIRST),
            )
        )
    return Form(job_fields=job_fields, tasks=tuple(tasks))


def _text(raw: str) -> str:
    return raw.replace("\r\n", "\n")  # browsers post a textarea's newlines as CRLF


def _value(f: Field, form: Mapping[str, str], reading: Reading) -> tuple[bool, Any]:
    """(present, value) of one field as posted."""
    if f.kind == "group":
        inner = _values(f.children, form, reading)
        return bool(inner), inner
    raw = _text(form.get(f.key, ""))
    if not raw.strip():
        return False, None
    if f.kind in ("text", "textarea"):
        return True, raw
    if f.kind == "number":
        try:
            return True, int(raw) if f.integer else float(raw)
        except ValueError:
            return True, raw  # the API names the field and says what it must be
    if f.kind == "boolean":
        return True, {"true": True, "false": False}.get(raw, raw)
    if f.kind == "choice":
        return True, raw
    if f.kind == "lines":
        return True, [line for line in raw.split("\n") if line.strip()]
    if f.kind == "pairs":
        pairs: dict[str, str] = {}
        for n, line in enumerate(raw.split("\n"), start=1):
            if not line.strip():
                continue
            name, sep, value = line.partition("=")
            if not sep:
                reading.errors.setdefault(f.key, []).append(f"line {n}: write it as name=value")
                continue
            pairs[name.strip()] = value
        return True, pairs
    try:
        return True, json.loads(raw)
    except ValueError as exc:
        reading.errors.setdefault(f.key, []).append(f"not JSON: {exc}")
        return False, None


def _values(fields: Sequence[Field], form: Mapping[str, str], reading: Reading) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields:
        present, value = _value(f, form, reading)
        if present:
            out[str(f.loc[-1])] = value
    return out


def job_body(form: Form, posted: Mapping[str, str]) -> Reading:
    """The ``POST /v1/jobs`` body the posted form describes."""
    reading = Reading(body={})
    reading.body.update(_values(form.job_fields, posted, reading))
    tasks = []
    for part in form.tasks:
        task: dict[str, Any] = {"type": part.type, "payload": {}}
        task.update(_values(part.fields, posted, reading))
        tasks.append(task)
    reading.body["tasks"] = tasks
    return reading


def place_errors(
    form: Form, details: Sequence[ErrorDetail]
) -> tuple[dict[str, list[str]], list[str]]:
    """Each detail at the field its loc names (or the nearest field enclosing it), by key;
    and the messages no field holds (shown above the form)."""
    by_loc: dict[Loc, str] = {f.loc: f.key for f in form.all_fields()}
    by_loc.update({("tasks", t.index): f"t{t.index}" for t in form.tasks})
    placed: dict[str, list[str]] = {}
    loose: list[str] = []
    for d in details:
        loc: Loc = tuple(d.loc[1:]) if d.loc and d.loc[0] == "body" else ()
        at = next((loc[:n] for n in range(len(loc), 0, -1) if loc[:n] in by_loc), None)
        if at is None:
            loose.append(f"{'.'.join(str(p) for p in d.loc)}: {d.msg}")
            continue
        below = ".".join(str(p) for p in loc[len(at) :])
        placed.setdefault(by_loc[at], []).append(f"{below}: {d.msg}" if below else d.msg)
    return placed, loose
