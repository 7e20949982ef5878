"""Malformed requests, table-driven: each gets its documented 4xx, an error body that names
the problem, and leaves the database (and the queue) exactly as it was."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import pytest
import redis.asyncio as aioredis

from core import queue
from tests.integration.api.conftest import Api
from tests.integration.api.plugin import REFUSED
from tests.integration.api.support import bearer, new_token, row_counts
from tests.openapi import component_validator

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


@dataclass(frozen=True)
class World:
    """What the cases refer to: two tokens and a job of the first one."""

    alice: str
    mallory: str
    job_id: str
    task_id: str


def shell(script: Any = "true", **extra: Any) -> dict[str, Any]:
    return {"type": "shell", "payload": {"script": script}, **extra}


def echo(message: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"type": "echo", "payload": {"message": message}, **extra}


@dataclass(frozen=True)
class Case:
    name: str
    status: int
    code: str
    # Must appear in the error message or one of the details' msg (case-insensitive).
    says: str
    method: str = "POST"
    path: Callable[[World], str] = lambda w: "/v1/jobs"
    json_body: Any = None
    raw_body: bytes | None = None
    headers: Callable[[World], dict[str, str]] = lambda w: bearer(w.alice)
    loc: list[str | int] | None = None  # expected loc of the first detail
    params: dict[str, Any] = field(default_factory=dict)
    stream: bool = False


def _jobs(*tasks: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"tasks": list(tasks), **top}


CASES = [
    Case("bad JSON", 400, "invalid_json", "line 1 column", raw_body=b'{"tasks": [', loc=["body"]),
    Case("not UTF-8", 400, "invalid_json", "UTF-8", raw_body=b"\xff\xfe{}", loc=["body"]),
    Case("NaN is not JSON", 400, "invalid_json", "NaN", raw_body=b'{"tasks": NaN}'),
    Case(
        "body is an array",
        422,
        "validation_error",
        "is not of type 'object'",
        json_body=[1],
        loc=["body"],
    ),
    Case(
        "tasks missing",
        422,
        "validation_error",
        "'tasks' is a required property",
        json_body={"name": "x"},
        loc=["body"],
    ),
    Case(
        "tasks empty",
        422,
        "validation_error",
        "should be non-empty",
        json_body=_jobs(),
        loc=["body", "tasks"],
    ),
    Case(
        "tasks not a list",
        422,
        "validation_error",
        "is not of type 'array'",
        json_body={"tasks": "shell"},
        loc=["body", "tasks"],
    ),
    Case(
        "unknown field",
        422,
        "validation_error",
        "'colour' was unexpected",
        json_body=_jobs(shell(), colour="red"),
        loc=["body"],
    ),
    Case(
        "label value not a string",
        422,
        "validation_error",
        "is not of type 'string'",
        json_body=_jobs(shell(), labels={"env": 3}),
        loc=["body", "labels", "env"],
    ),
    Case(
        "callback_url not http",
        422,
        "validation_error",
        "http:// or https://",
        json_body=_jobs(shell(), callback_url="ftp://example.com/x"),
        loc=["body", "callback_url"],
    ),
    Case(
        "job name charset",
        422,
        "validation_error",
        "letters, digits",
        json_body=_jobs(shell(), name="<script>"),
        loc=["body", "name"],
    ),
    Case(
        "task type missing",
        422,
        "validation_error",
        "'type' is a required property",
        json_body=_jobs({"payload": {}}),
        loc=["body", "tasks", 0],
    ),
    Case(
        "unknown task type",
        422,
        "validation_error",
        "unknown task type 'nope'",
        json_body=_jobs({"type": "nope", "payload": {}}),
        loc=["body", "tasks", 0, "type"],
    ),
    Case(
        "payload off schema (wrong type)",
        422,
        "validation_error",
        "is not of type 'string'",
        json_body=_jobs(shell(5)),
        loc=["body", "tasks", 0, "payload", "script"],
    ),
    Case(
        "payload off schema (missing key)",
        422,
        "validation_error",
        "'message' is a required property",
        json_body=_jobs({"type": "echo", "payload": {}}),
        loc=["body", "tasks", 0, "payload"],
    ),
    Case(
        "payload refused by the plugin",
        422,
        "validation_error",
        "refuses this message",
        json_body=_jobs(echo(REFUSED)),
        loc=["body", "tasks", 0, "payload", "message"],
    ),
    Case(
        "payload too large",
        422,
        "validation_error",
        "the limit is 262144",
        json_body=_jobs(shell("x" * 300_000)),
        loc=["body", "tasks", 0, "payload"],
    ),
    Case(
        "dependency cycle",
        422,
        "validation_error",
        "dependency cycle: a -> b -> a",
        json_body=_jobs(echo(name="a", depends_on=["b"]), echo(name="b", depends_on=["a"])),
        loc=["body", "tasks", 0, "depends_on"],
    ),
    Case(
        "self dependency",
        422,
        "validation_error",
        "dependency cycle: a -> a",
        json_body=_jobs(echo(name="a", depends_on=["a"])),
    ),
    Case(
        "unknown dependency",
        422,
        "validation_error",
        "unknown task 'ghost'",
        json_body=_jobs(echo(name="a", depends_on=["ghost"])),
        loc=["body", "tasks", 0, "depends_on", 0],
    ),
    Case(
        "duplicate task names",
        422,
        "validation_error",
        "duplicate task name 'a'",
        json_body=_jobs(echo(name="a"), echo(name="a")),
        loc=["body", "tasks", 1, "name"],
    ),
    Case(
        "duplicate dependency",
        422,
        "validation_error",
        "non-unique",
        json_body=_jobs(echo(name="a"), echo(name="b", depends_on=["a", "a"])),
        loc=["body", "tasks", 1, "depends_on"],
    ),
    Case(
        "timeout_s zero",
        422,
        "validation_error",
        "less than the minimum of 1",
        json_body=_jobs(shell(timeout_s=0)),
        loc=["body", "tasks", 0, "timeout_s"],
    ),
    Case(
        "max_attempts a string",
        422,
        "validation_error",
        "is not of type 'integer'",
        json_body=_jobs(shell(max_attempts="3")),
        loc=["body", "tasks", 0, "max_attempts"],
    ),
    Case(
        "priority a boolean",
        422,
        "validation_error",
        "is not of type 'integer'",
        json_body=_jobs(shell(priority=True)),
        loc=["body", "tasks", 0, "priority"],
    ),
    Case(
        "too many tasks",
        422,
        "validation_error",
        "is too long",
        json_body=_jobs(*[echo(name=f"t{i}") for i in range(101)]),
        loc=["body", "tasks"],
    ),
    Case(
        "oversized body (Content-Length)",
        413,
        "body_too_large",
        "exceeds the limit",
        raw_body=b"{" + b" " * MiB + b"}",
    ),
    Case(
        "oversized body (chunked, endless)", 413, "body_too_large", "exceeds the limit", stream=True
    ),
    Case(
        "not JSON content type",
        415,
        "unsupported_media_type",
        "application/json",
        raw_body=b"tasks=1",
        headers=lambda w: {**bearer(w.alice), "Content-Type": "text/plain"},
    ),
    Case(
        "Idempotency-Key too long",
        400,
        "bad_request",
        "Idempotency-Key",
        json_body=_jobs(shell()),
        headers=lambda w: {**bearer(w.alice), "Idempotency-Key": "k" * 256},
        loc=["header", "Idempotency-Key"],
    ),
    Case(
        "Idempotency-Key reused with another body",
        409,
        "idempotency_conflict",
        "different body",
        json_body=_jobs(shell("false")),
        headers=lambda w: {**bearer(w.alice), "Idempotency-Key": "key-1"},
        loc=["header", "Idempotency-Key"],
    ),
    Case(
        "missing token",
        401,
        "unauthorized",
        "missing bearer token",
        json_body=_jobs(shell()),
        headers=lambda w: {},
        loc=["header", "Authorization"],
    ),
    Case(
        "wrong token",
        401,
        "unauthorized",
        "invalid or revoked token",
        json_body=_jobs(shell()),
        headers=lambda w: bearer("hr_not-a-real-token"),
    ),
    Case(
        "not a bearer token",
        401,
        "unauthorized",
        "malformed Authorization header",
        json_body=_jobs(shell()),
        headers=lambda w: {"Authorization": f"Basic {w.alice}"},
    ),
    Case(
        "someone else's job",
        404,
        "not_found",
        "no job",
        method="GET",
        path=lambda w: f"/v1/jobs/{w.job_id}",
        headers=lambda w: bearer(w.mallory),
        loc=["path", "job_id"],
    ),
    Case(
        "cancel someone else's job",
        404,
        "not_found",
        "no job",
        path=lambda w: f"/v1/jobs/{w.job_id}/cancel",
        headers=lambda w: bearer(w.mallory),
    ),
    Case(
        "someone else's task",
        404,
        "not_found",
        "no task",
        method="GET",
        path=lambda w: f"/v1/jobs/{w.job_id}/tasks/{w.task_id}",
        headers=lambda w: bearer(w.mallory),
    ),
    Case(
        "no such job",
        404,
        "not_found",
        "no job",
        method="GET",
        path=lambda w: f"/v1/jobs/{uuid.uuid4()}",
    ),
    Case(
        "job id not a uuid",
        404,
        "not_found",
        "no such resource",
        method="GET",
        path=lambda w: "/v1/jobs/12345",
    ),
    Case(
        "bad cursor",
        400,
        "bad_cursor",
        "invalid cursor",
        method="GET",
        params={"cursor": "not-a-cursor"},
        loc=["query", "cursor"],
    ),
    Case(
        "unknown status filter",
        400,
        "invalid_query",
        "unknown status 'done'",
        method="GET",
        params={"status": "done"},
        loc=["query", "status"],
    ),
    Case(
        "label filter without value",
        400,
        "invalid_query",
        "expected key:value",
        method="GET",
        params={"label": "team"},
        loc=["query", "label"],
    ),
    Case(
        "limit out of range",
        400,
        "invalid_query",
        "between 1 and 200",
        method="GET",
        params={"limit": "0"},
        loc=["query", "limit"],
    ),
    Case("method not allowed", 405, "method_not_allowed", "DELETE", method="DELETE"),
    Case(
        "unknown route", 404, "not_found", "/v1/nothing", method="GET", path=lambda w: "/v1/nothing"
    ),
]


async def _endless() -> AsyncIterator[bytes]:
    # Never ends: only a server that stops reading at the limit can answer at all.
    yield b'{"tasks": ["'
    while True:
        yield b"x" * 65536


async def _queue_depth(url: str) -> dict[str, int]:
    client = aioredis.Redis.from_url(url)
    try:
        return await queue.depth(client)
    finally:
        await client.aclose()


async def test_malformed_requests_are_refused_and_change_nothing(api: Api) -> None:
    assert len(CASES) >= 20
    _, alice = await new_token(api.db.primary, "alice")
    _, mallory = await new_token(api.db.primary, "mallory")
    created = await api.client.post(
        "/v1/jobs", json=_jobs(shell()), headers={**bearer(alice), "Idempotency-Key": "key-1"}
    )
    assert created.status_code == 201, created.text
    job = created.json()
    world = World(alice, mallory, job["id"], job["tasks"][0]["id"])
    error_schema = component_validator(api.app.state.homerun.openapi, "Error")

    before = await row_counts(api.db.primary)
    queue_before = await _queue_depth(api.settings.queue_redis_url)
    failures = []
    for case in CASES:
        kwargs: dict[str, Any] = {"headers": case.headers(world), "params": case.params}
        if case.stream:
            kwargs["content"] = _endless()
        elif case.raw_body is not None:
            kwargs["content"] = case.raw_body
        elif case.json_body is not None:
            kwargs["json"] = case.json_body
        response = await api.client.request(case.method, case.path(world), **kwargs)
        problems = []
        if response.status_code != case.status:
            problems.append(f"status {response.status_code}, expected {case.status}")
        try:
            body = response.json()
            error_schema.validate(body)
            error = body["error"]
            text = " ".join([error["message"], *(d["msg"] for d in error["details"])]).lower()
            if error["code"] != case.code:
                problems.append(f"code {error['code']!r}, expected {case.code!r}")
            if case.says.lower() not in text:
                problems.append(f"{case.says!r} not in {text!r}")
            if case.loc is not None and (
                not error["details"] or error["details"][0]["loc"] != case.loc
            ):
                problems.append(f"details {error['details']}, expected loc {case.loc}")
        except (ValueError, jsonschema.ValidationError) as exc:
            problems.append(f"error body {response.text[:200]!r} is off the schema: {exc}")
        after = await row_counts(api.db.primary)
        if after != before:
            problems.append(f"database changed: {before} -> {after}")
            before = after
        if problems:
            failures.append(f"{case.name}: {'; '.join(problems)}")
    assert not failures, "\n".join(failures)
    assert await _queue_depth(api.settings.queue_redis_url) == queue_before
    # The refused replay of key-1 did not touch the job it names.
    again = await api.client.get(f"/v1/jobs/{world.job_id}", headers=bearer(alice))
    assert again.json()["tasks"][0]["name"] == "task-1"
    assert json.loads(json.dumps(again.json()))["status"] == "queued"
