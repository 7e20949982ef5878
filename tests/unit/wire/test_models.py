"""Each model's published schema matches what the endpoints answer, and the client reads it back.

The answers are built the way the endpoints build them (``core.views`` from rows shaped like
asyncpg's, ``core.errors``, ``ModelResponse``) and checked against ``/openapi.json``'s
components with every ``$ref`` resolved.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

import wire
from core import views
from core.endpoints import schedules as schedule_endpoints
from core.errors import Detail, error_body, error_response
from core.responses import ModelResponse
from tests.openapi import component_validator
from tests.unit.core.test_openapi import spec

T0 = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
JOB_ID = uuid.UUID("11111111-1111-4111-8111-111111111111")
TASK_ID = uuid.UUID("22222222-2222-4222-8222-222222222222")


def job_row(**changes: Any) -> dict[str, Any]:
    row = {
        "id": JOB_ID,
        "name": "nightly",
        "status": "running",
        "labels": '{"team": "x"}',  # jsonb arrives as text through `databases`
        "callback_url": None,
        "cancel_requested": False,
        "created_at": T0,
        "updated_at": T0 + timedelta(seconds=1),
        "finished_at": None,
        "rerun_of": None,
        "schedule_id": None,
        "scheduled_for": None,
        "keep": False,
    }
    return {**row, **changes}


def task_row(**changes: Any) -> dict[str, Any]:
    row = {
        "id": TASK_ID,
        "job_id": JOB_ID,
        "name": "main",
        "type": "shell",
        "status": "running",
        "priority": 0,
        "timeout_s": None,
        "max_attempts": 3,
        "attempts": 2,
        "not_before": None,
        "output": None,
        "output_too_deep": None,
        "output_bytes": None,
        "reused_from": None,
        "error": None,
        "created_at": T0,
        "updated_at": T0,
        "started_at": T0,
        "finished_at": None,
        "depends_on": ["fetch"],
        "payload": '{"script": "echo hi"}',
        "runs_on": [],
        "cpus": None,
        "memory_mb": None,
        "is_map": False,
        "max_parallel": None,
        "map_over": None,
        "map_over_items": None,
        "map_index": None,
        "map_of": None,
        "map_counts": None,
    }
    return {**row, **changes}


def attempt_row(number: int, *, finished: bool) -> dict[str, Any]:
    row: dict[str, Any] = {
        "number": number,
        "runner_id": "runner-1",
        "status": "failed" if finished else "running",
        "container_id": "c0ffee" if finished else None,
        "lease_expires_at": T0 + timedelta(minutes=1),
        "started_at": T0,
        "finished_at": T0 + timedelta(seconds=3) if finished else None,
        "exit_code": 3 if finished else None,
        "failure_kind": "task" if finished else None,
        "error": "exit 3" if finished else None,
        "r_attempt": None,
    }
    if finished:
        row.update(
            r_attempt=number,
            r_exit_code=3,
            r_stdout="out\n",
            r_stdout_truncated=False,
            r_stderr="",
            r_stderr_truncated=True,
            r_output='{"n": [1, 2.5, null]}',
            r_output_too_deep=False,
            r_error="exit 3",
            r_created_at=T0 + timedelta(seconds=3),
        )
    return row


def task_detail() -> wire.TaskDetail:
    rows = [attempt_row(1, finished=True), attempt_row(2, finished=False)]
    return views.to_task_detail(task_row(), rows, rows[0])


def attempt_details() -> list[wire.AttemptDetail]:
    return [views.to_attempt_detail(attempt_row(n, finished=n == 1)) for n in (1, 2)]


def readiness(up: bool) -> wire.Readiness:
    probe = wire.Probe(up=True) if up else wire.Probe(up=False, error="OSError: refused")
    body = wire.Readiness(
        status="ready" if up else "unavailable",
        primary=probe,
        replica=wire.ReplicaState(configured=True, up=up, fallbacks=2, primary_fallbacks=0),
        queue_redis=wire.Probe(up=True),
    )
    if not up:
        body.error = error_body("unavailable", "the primary database does not answer")
    return body


def schedule_row(**changes: Any) -> dict[str, Any]:
    row = {
        "id": JOB_ID,
        "name": "nightly",
        "cron": "30 2 * * *",
        "timezone": "Europe/Berlin",
        "job": '{"tasks": [{"name": "a", "type": "shell", "payload": {"script": "true"}}]}',
        "overlap": "forbid",
        "catchup": "latest",
        "paused": False,
        "next_tick": T0,
        "created_at": T0,
        "updated_at": T0,
    }
    return {**row, **changes}


def schedules() -> list[wire.Schedule]:
    ticks = [
        {"tick": T0, "outcome": "created", "reason": None, "manual": False, "job_id": JOB_ID},
        {"tick": T0, "outcome": "skipped", "reason": "paused", "manual": False, "job_id": None},
    ]
    return [
        schedule_endpoints._view(schedule_row(), ticks, T0),
        schedule_endpoints._view(schedule_row(cron="@hourly", paused=True), [], T0),
    ]


def secret_infos() -> list[wire.SecretInfo]:
    return [wire.SecretInfo(name="backup-key", key_id="k1", created_at=T0, updated_at=T0)]


def samples() -> dict[str, list[Any]]:
    done = job_row(status="succeeded", finished_at=T0 + timedelta(seconds=9), labels="{}")
    detail = task_detail()
    return {
        "Job": [
            views.to_job(job_row(), [task_row()]),
            views.to_job(
                done,
                [task_row(reused_from=TASK_ID, output_bytes=2, output="{}")],
                [str(JOB_ID)],
            ),
        ],
        "JobSummary": [
            views.to_summary(job_row()),
            views.to_summary(done),
            views.to_summary(job_row(schedule_id=JOB_ID, scheduled_for=T0)),
        ],
        "Schedule": schedules(),
        "SchedulePage": [
            wire.SchedulePage(schedules=schedules(), next_cursor="abc"),
            wire.SchedulePage(schedules=[], next_cursor=None),
        ],
        "Tick": schedules()[0].recent_ticks,
        "SecretInfo": secret_infos(),
        "SecretList": [wire.SecretList(secrets=secret_infos()), wire.SecretList(secrets=[])],
        "JobPage": [
            wire.JobPage(jobs=[views.to_summary(job_row())], next_cursor="abc"),
            wire.JobPage(jobs=[], next_cursor=None),
        ],
        "Task": [
            views.to_task(task_row()),
            views.to_task(task_row(**map_columns())),
            views.to_task(task_row(name="sq[3]", map_of="sq", map_index=3)),
            views.to_task(task_row(output='{"a": 1}', output_bytes=8, not_before=T0, timeout_s=30)),
            views.to_task(task_row(status="queued", runs_on=["bigdisk"], cpus=1.5, memory_mb=512)),
        ],
        "Resources": [
            wire.Resources(cpus=None, memory_mb=None),
            wire.Resources(cpus=0.5, memory_mb=2048),
        ],
        "TaskDetail": [
            detail,
            views.to_task_detail(task_row(payload="{}"), [], None),
        ],
        "Attempt": detail.attempts,
        "AttemptDetail": attempt_details(),
        "Result": [a.result for a in attempt_details() if a.result is not None],
        "TaskTypeInfo": [
            wire.TaskTypeInfo(name="shell", description="A shell script", payload_schema={})
        ],
        "TaskTypeList": [
            wire.TaskTypeList(
                task_types=[
                    wire.TaskTypeInfo(
                        name="shell", description="", payload_schema={"type": "object"}
                    )
                ]
            )
        ],
        "Error": [
            wire.Error(error=error_body("not_found", "no job", [Detail(["path", "job_id"], "x")])),
            wire.Error(
                error=error_body("validation_error", "bad", [Detail(["body", "tasks", 0], "y")])
            ),
        ],
        "ErrorBody": [error_body("internal_error", "internal server error")],
        "ErrorDetail": [Detail(["query", "limit"], "not an integer")],
        "Health": [wire.Health(status="ok")],
        "Readiness": [readiness(True), readiness(False)],
        "Probe": [wire.Probe(up=True), wire.Probe(up=False, error="x")],
        "ReplicaState": [readiness(True).replica],
        "MapState": [m for m in [views.to_task(task_row(**map_columns())).map] if m],
        "Instance": instances(),
        "InstancePage": [
            wire.InstancePage(instances=instances(), next_cursor="abc"),
            wire.InstancePage(instances=[], next_cursor=None),
        ],
        "Artifact": [artifact()],
        "RefusedArtifact": [wire.RefusedArtifact(path="link", reason="a symlink (never followed)")],
        "ArtifactList": [
            wire.ArtifactList(
                task_id=str(uuid.uuid4()),
                artifacts=[artifact()],
                refused=[wire.RefusedArtifact(path="fifo", reason="a FIFO")],
            ),
            wire.ArtifactList(task_id=str(uuid.uuid4()), artifacts=[], refused=[]),
        ],
    }


def artifact() -> wire.Artifact:
    return wire.Artifact(
        path="out/report.pdf",
        size=3,
        sha256="ab" * 32,
        content_type="application/pdf",
        created_at=datetime.now(UTC),
    )


def map_columns() -> dict[str, Any]:
    return {
        "is_map": True,
        "max_parallel": 4,
        "map_over": None,
        "map_over_items": 200,
        "map_counts": '{"running": 4, "pending": 196}',
    }


def instances() -> list[wire.Instance]:
    common: dict[str, Any] = {
        "id": str(TASK_ID),
        "attempt_count": 1,
        "retry_at": None,
        "error": None,
        "started_at": T0,
    }
    return [
        wire.Instance(
            index=0,
            name="sq[0]",
            status=wire.TaskStatus.SUCCEEDED,
            item={"n": 1},
            output=[1],
            output_bytes=3,
            finished_at=T0,
            **common,
        ),
        wire.Instance(
            index=1,
            name="sq[1]",
            status=wire.TaskStatus.RUNNING,
            item=None,
            output=None,
            output_bytes=None,
            finished_at=None,
            **common,
        ),
    ]


def body_of(model: msgspec.Struct) -> Any:
    return json.loads(bytes(ModelResponse(model).body))


def test_every_published_model_has_samples_here() -> None:
    components = spec()["components"]["schemas"]
    models = {name for name, schema in components.items() if "title" in schema} - {
        s.__name__
        for s in (
            *(wire.JobStatus, wire.TaskStatus, wire.AttemptStatus, wire.FailureKind),
            *(wire.Overlap, wire.Catchup, wire.TickOutcome),
        )
    }
    assert models == set(samples())


@pytest.mark.parametrize("name", sorted(samples()))
def test_answers_validate_against_the_published_component(name: str) -> None:
    validator = component_validator(spec(), name)
    for model in samples()[name]:
        assert type(model).__name__ == name
        validator.validate(body_of(model))


@pytest.mark.parametrize("name", sorted(samples()))
def test_the_client_decodes_an_answer_back_into_its_model(name: str) -> None:
    for model in samples()[name]:
        assert wire.decode(bytes(ModelResponse(model).body), type(model)) == model


def test_published_objects_are_closed() -> None:
    components = spec()["components"]["schemas"]
    objects = {name: c for name, c in components.items() if c.get("type") == "object"}
    assert len(objects) == len(samples()) + 1  # and JobSubmission
    assert all(c["additionalProperties"] is False for c in objects.values())
    extra = {**body_of(samples()["Job"][0]), "surprise": 1}
    assert not component_validator(spec(), "Job").is_valid(extra)


def test_a_job_renders_exactly_as_it_always_has() -> None:
    # The shape clients know: field names, their order, timestamps as isoformat (+00:00).
    body = bytes(ModelResponse(views.to_job(job_row(), [task_row()]), status_code=201).body)
    assert json.loads(body) == {
        "id": str(JOB_ID),
        "name": "nightly",
        "status": "running",
        "labels": {"team": "x"},
        "callback_url": None,
        "cancel_requested": False,
        "created_at": "2025-01-02T03:04:05.678901+00:00",
        "updated_at": "2025-01-02T03:04:06.678901+00:00",
        "finished_at": None,
        "rerun_of": None,
        "schedule_id": None,
        "scheduled_for": None,
        "keep": False,
        "tasks": [
            {
                "id": str(TASK_ID),
                "job_id": str(JOB_ID),
                "name": "main",
                "type": "shell",
                "status": "running",
                "depends_on": ["fetch"],
                "priority": 0,
                "timeout_s": None,
                "max_attempts": 3,
                "attempt_count": 2,
                "retry_at": None,
                "output": None,
                "output_bytes": None,
                "error": None,
                "reused_from": None,
                "created_at": "2025-01-02T03:04:05.678901+00:00",
                "updated_at": "2025-01-02T03:04:05.678901+00:00",
                "started_at": "2025-01-02T03:04:05.678901+00:00",
                "finished_at": None,
                "runs_on": [],
                "resources": {"cpus": None, "memory_mb": None},
                "waiting_for": None,
                "map": None,
                "map_of": None,
                "map_index": None,
            }
        ],
        "reruns": [],
    }
    assert body.startswith(b'{"id":"11111111-1111-4111-8111-111111111111","name":"nightly",')


def test_a_task_detail_renders_exactly_as_it_always_has() -> None:
    body = body_of(task_detail())
    assert list(body)[-3:] == ["payload", "attempts", "result"]
    assert body["payload"] == {"script": "echo hi"}
    assert body["attempts"][0] == {
        "number": 1,
        "runner_id": "runner-1",
        "status": "failed",
        "container_id": "c0ffee",
        "lease_expires_at": "2025-01-02T03:05:05.678901+00:00",
        "started_at": "2025-01-02T03:04:05.678901+00:00",
        "finished_at": "2025-01-02T03:04:08.678901+00:00",
        "exit_code": 3,
        "failure_kind": "task",
        "error": "exit 3",
    }
    # An attempt's result is its own answer (bounded answers): only the latest is here.
    assert body["result"] == {
        "exit_code": 3,
        "stdout": "out\n",
        "stdout_truncated": False,
        "stderr": "",
        "stderr_truncated": True,
        "output": {"n": [1, 2.5, None]},
        "error": "exit 3",
        "created_at": "2025-01-02T03:04:08.678901+00:00",
    }
    assert body["attempts"][1]["failure_kind"] is None
    first, second = (body_of(a) for a in attempt_details())
    assert first == {**body["attempts"][0], "result": body["result"]}
    assert second["result"] is None


def test_errors_and_readiness_render_as_they_always_have() -> None:
    response = error_response(
        404, "not_found", "no job x", [Detail(["path", "job_id"], "no such job")]
    )
    assert response.headers["content-type"] == "application/json"
    assert json.loads(bytes(response.body)) == {
        "error": {
            "code": "not_found",
            "message": "no job x",
            "details": [{"loc": ["path", "job_id"], "msg": "no such job"}],
        }
    }
    assert body_of(readiness(True)) == {
        "status": "ready",
        "primary": {"up": True},
        "replica": {"configured": True, "up": True, "fallbacks": 2, "primary_fallbacks": 0},
        "queue_redis": {"up": True},
    }
    down = body_of(readiness(False))
    assert down["primary"] == {"up": False, "error": "OSError: refused"}
    assert down["error"] == {
        "code": "unavailable",
        "message": "the primary database does not answer",
        "details": [],
    }


def test_decoding_ignores_unknown_fields_and_checks_known_ones() -> None:
    body = {**body_of(samples()["Job"][0]), "added_in_a_later_version": True}
    assert wire.decode(json.dumps(body), wire.Job) == samples()["Job"][0]
    with pytest.raises(wire.DecodeError, match="status"):
        wire.decode(json.dumps({**body, "status": "exploded"}), wire.Job)
    with pytest.raises(wire.DecodeError, match="tasks"):
        wire.decode(json.dumps({k: v for k, v in body.items() if k != "tasks"}), wire.Job)
    with pytest.raises(wire.DecodeError):
        wire.decode(b"<html>a proxy's error page</html>", wire.Job)


def test_public_surface() -> None:
    namespace: dict[str, object] = {}
    exec("from wire import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(wire.__all__)
    assert set(wire.__all__) == {
        *("Attempt", "AttemptDetail", "Job", "JobPage", "JobSummary", "Result", "Task"),
        "Resources",
        *("TaskDetail", "JOB_VIEW_OUTPUT_BYTES"),
        *("Error", "ErrorBody", "ErrorDetail", "Health", "Probe", "Readiness", "ReplicaState"),
        *("TaskTypeInfo", "TaskTypeList"),
        *("SecretInfo", "SecretList"),
        *("Schedule", "SchedulePage", "Tick", "TickOutcome", "Catchup", "Overlap"),
        *("AttemptStatus", "FailureKind", "JobStatus", "TaskStatus"),
        *("TERMINAL_JOB", "TERMINAL_TASK"),
        *("REF_PREFIX", "AnyJson", "DecodeError", "Timestamp", "Uuid"),
        *("components", "decode", "dumps", "to_builtins"),
        *("Instance", "InstancePage", "MapState"),
        *("Artifact", "ArtifactList", "RefusedArtifact"),
    }
