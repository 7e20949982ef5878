"""The OpenAPI 3.1 document served at ``/openapi.json``.

Built when the app starts, from the same JSON Schemas the API enforces: the submission
envelope comes from ``core.validation.JobSchemas`` and each task type's payload schema from
its plugin, so the document describes this deployment exactly (its limits, its task
types). The schemathesis test holds every response to it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from core.models import AttemptStatus, FailureKind, JobStatus, TaskStatus
from core.validation import JobSchemas
from plugins.tasktypes import TaskType

__all__ = ["build_openapi"]

_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _nullable(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"anyOf": [dict(schema), {"type": "null"}]}


_TS = {"type": "string", "format": "date-time"}
_NULL_TS = {"type": ["string", "null"], "format": "date-time"}
_NULL_STR = {"type": ["string", "null"]}
_NULL_INT = {"type": ["integer", "null"]}
_ANY_JSON: dict[str, Any] = {"description": "Any JSON value, or null."}


def _object(properties: Mapping[str, Any], description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": dict(properties),
        "required": list(properties),
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


def _embeddable(schema: Mapping[str, Any]) -> dict[str, Any]:
    # A plugin's schema is a document of its own; inside ours its $schema/$id would claim
    # to be a separate resource.
    return {k: copy.deepcopy(v) for k, v in schema.items() if k not in {"$schema", "$id"}}


def _components(schemas: JobSchemas, task_types: Mapping[str, TaskType]) -> dict[str, Any]:
    submission = copy.deepcopy(schemas.submission)
    if task_types:
        # One branch per task type, so a generated submission can be valid for its type.
        branches = []
        for name in sorted(task_types):
            branch = copy.deepcopy(schemas.task)
            branch["properties"]["type"] = {"const": name}
            branch["properties"]["payload"] = _embeddable(task_types[name].payload_schema)
            branch["title"] = f"{name} task"
            branches.append(branch)
        submission["properties"]["tasks"]["items"] = {"oneOf": branches}
    error = _object(
        {
            "error": _object(
                {
                    "code": {"type": "string", "description": "Stable, machine-readable."},
                    "message": {"type": "string", "description": "For people."},
                    "details": {
                        "type": "array",
                        "items": _object(
                            {
                                "loc": {
                                    "type": "array",
                                    "items": {"type": ["string", "integer"]},
                                    "description": "Path to the offending input, e.g."
                                    ' ["body", "tasks", 0, "payload", "script"].',
                                },
                                "msg": {"type": "string"},
                            }
                        ),
                    },
                }
            )
        },
        "Every error answer.",
    )
    job_properties = {
        "id": {"type": "string", "format": "uuid"},
        "name": _NULL_STR,
        "status": {"enum": [s.value for s in JobStatus]},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "callback_url": _NULL_STR,
        "cancel_requested": {"type": "boolean"},
        "created_at": _TS,
        "updated_at": _TS,
        "finished_at": _NULL_TS,
    }
    task_properties = {
        "id": {"type": "string", "format": "uuid"},
        "job_id": {"type": "string", "format": "uuid"},
        "name": {"type": "string"},
        "type": {"type": "string"},
        "status": {"enum": [s.value for s in TaskStatus]},
        "depends_on": {"type": "array", "items": {"type": "string"}},
        "priority": {"type": "integer"},
        "timeout_s": _NULL_INT,
        "max_attempts": {"type": "integer"},
        "attempt_count": {"type": "integer", "description": "Number of the latest attempt."},
        "retry_at": {**_NULL_TS, "description": "When a waiting retry becomes due."},
        "output": _ANY_JSON,
        "error": _NULL_STR,
        "created_at": _TS,
        "updated_at": _TS,
        "started_at": _NULL_TS,
        "finished_at": _NULL_TS,
    }
    result = _object(
        {
            "exit_code": _NULL_INT,
            "stdout": {"type": "string"},
            "stdout_truncated": {"type": "boolean"},
            "stderr": {"type": "string"},
            "stderr_truncated": {"type": "boolean"},
            "output": _ANY_JSON,
            "error": _NULL_STR,
            "created_at": _TS,
        },
        "What one attempt left behind.",
    )
    attempt = _object(
        {
            "number": {"type": "integer", "minimum": 1},
            "runner_id": {"type": "string"},
            "status": {"enum": [s.value for s in AttemptStatus]},
            "container_id": _NULL_STR,
            "lease_expires_at": _TS,
            "started_at": _TS,
            "finished_at": _NULL_TS,
            "exit_code": _NULL_INT,
            "failure_kind": {"enum": [*(k.value for k in FailureKind), None]},
            "error": _NULL_STR,
            "result": _nullable(_ref("Result")),
        }
    )
    return {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": error,
            "JobSubmission": submission,
            "JobSummary": _object(job_properties),
            "Job": _object({**job_properties, "tasks": {"type": "array", "items": _ref("Task")}}),
            "JobPage": _object(
                {
                    "jobs": {"type": "array", "items": _ref("JobSummary")},
                    "next_cursor": {
                        **_NULL_STR,
                        "description": "Pass as ?cursor= for the next page; null on the last.",
                    },
                }
            ),
            "Task": _object(task_properties),
            "TaskDetail": _object(
                {
                    **task_properties,
                    "payload": {"type": "object"},
                    "attempts": {"type": "array", "items": _ref("Attempt")},
                    "result": {
                        **_nullable(_ref("Result")),
                        "description": "The latest attempt's result.",
                    },
                }
            ),
            "Attempt": attempt,
            "Result": result,
            "TaskTypeList": _object(
                {
                    "task_types": {
                        "type": "array",
                        "items": _object(
                            {
                                "name": {"type": "string"},
                                "description": {"type": "string"},
                                "payload_schema": {"type": "object"},
                            }
                        ),
                    }
                }
            ),
        },
    }


def _error(description: str, headers: Mapping[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref("Error")}},
    }
    if headers:
        response["headers"] = dict(headers)
    return response


def _ok(description: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": dict(schema)}}}


_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "string"}}}
_AUTHED = {
    "401": _error("Missing, malformed, unknown or revoked bearer token."),
    "429": _error("Per-token rate limit exceeded.", _RETRY_AFTER),
    "503": _error("The database is unavailable (primary down); retry later.", _RETRY_AFTER),
}
_JOB_ID = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}
_TASK_ID = {**_JOB_ID, "name": "task_id"}


def _paths(max_body_bytes: int) -> dict[str, Any]:
    too_large = _error(f"Request body over {max_body_bytes} bytes.")
    return {
        "/v1/jobs": {
            "post": {
                "operationId": "createJob",
                "summary": "Submit a job",
                "security": [{"bearer": []}],
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 255,
                            "pattern": "^[\\x20-\\x7e]+$",
                        },
                        "description": "Same key and body: the same job again (200). Same key,"
                        " other body: 409.",
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("JobSubmission")}},
                },
                "responses": {
                    "201": _ok("Accepted; the job and its tasks.", _ref("Job")),
                    "200": _ok("Idempotent replay: the job this key created.", _ref("Job")),
                    "400": _error("Body is not JSON, or a malformed Idempotency-Key."),
                    **_AUTHED,
                    "409": _error("Idempotency-Key reused with a different body."),
                    "413": too_large,
                    "415": _error("Content-Type is not application/json."),
                    "422": _error(
                        "The job is invalid: each detail names a field (unknown task type,"
                        " payload off its schema, dependency cycle, ...). Nothing was written."
                    ),
                },
            },
            "get": {
                "operationId": "listJobs",
                "summary": "List the token's jobs, newest first",
                "security": [{"bearer": []}],
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {
                            "type": "array",
                            "items": {"enum": [s.value for s in JobStatus]},
                        },
                        "style": "form",
                        "explode": True,
                        "description": "Repeat for any of several statuses.",
                    },
                    {
                        "name": "label",
                        "in": "query",
                        "schema": {
                            "type": "array",
                            "items": {"type": "string", "pattern": "^[^:]+:"},
                        },
                        "style": "form",
                        "explode": True,
                        "description": "key:value; repeat to require several labels.",
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "next_cursor of the previous page.",
                    },
                ],
                "responses": {
                    "200": _ok("A page of jobs.", _ref("JobPage")),
                    "400": _error("A malformed filter, limit or cursor."),
                    **_AUTHED,
                },
            },
        },
        "/v1/jobs/{job_id}": {
            "get": {
                "operationId": "getJob",
                "summary": "A job with its tasks",
                "security": [{"bearer": []}],
                "parameters": [_JOB_ID],
                "responses": {
                    "200": _ok("The job.", _ref("Job")),
                    **_AUTHED,
                    "404": _error("No such job for this token."),
                },
            }
        },
        "/v1/jobs/{job_id}/tasks/{task_id}": {
            "get": {
                "operationId": "getTask",
                "summary": "A task with its attempts and results",
                "security": [{"bearer": []}],
                "parameters": [_JOB_ID, _TASK_ID],
                "responses": {
                    "200": _ok("The task.", _ref("TaskDetail")),
                    **_AUTHED,
                    "404": _error("No such job or task for this token."),
                },
            }
        },
        "/v1/jobs/{job_id}/cancel": {
            "post": {
                "operationId": "cancelJob",
                "summary": "Cancel a job (idempotent; a finished job stays as it is)",
                "security": [{"bearer": []}],
                "parameters": [_JOB_ID],
                "responses": {
                    "202": _ok(
                        "Cancellation recorded; running tasks are being stopped.", _ref("Job")
                    ),
                    **_AUTHED,
                    "404": _error("No such job for this token."),
                    "413": too_large,
                },
            }
        },
        "/v1/task-types": {
            "get": {
                "operationId": "listTaskTypes",
                "summary": "Registered task types and their payload schemas",
                "security": [{"bearer": []}],
                "responses": {"200": _ok("Task types.", _ref("TaskTypeList")), **_AUTHED},
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness",
                "security": [],
                "responses": {
                    "200": _ok("Alive.", _object({"status": {"const": "ok"}})),
                },
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Readiness: the primary answers; replica and queue Redis shown",
                "security": [],
                "responses": {
                    "200": _ok("Ready.", _ref("Readiness")),
                    "503": {
                        **_ok("The primary does not answer.", _ref("Readiness")),
                        "headers": _RETRY_AFTER,
                    },
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "security": [],
                "responses": {"200": _ok("OpenAPI 3.1 document.", {"type": "object"})},
            }
        },
    }


def _readiness() -> dict[str, Any]:
    probe = {
        "type": "object",
        "properties": {"up": {"type": "boolean"}, "error": {"type": "string"}},
        "required": ["up"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "status": {"enum": ["ready", "unavailable"]},
            "primary": probe,
            "queue_redis": probe,
            "replica": _object(
                {
                    "configured": {"type": "boolean"},
                    "up": {"type": "boolean"},
                    "fallbacks": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Reads meant for the replica that the primary answered.",
                    },
                    "primary_fallbacks": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Reads meant for the primary that the replica answered "
                        "while the primary was down.",
                    },
                }
            ),
            "error": {"type": "object", "description": "Present when not ready."},
        },
        "required": ["status", "primary", "queue_redis", "replica"],
        "additionalProperties": False,
    }


def build_openapi(
    schemas: JobSchemas, task_types: Mapping[str, TaskType], *, max_body_bytes: int, version: str
) -> dict[str, Any]:
    components = _components(schemas, task_types)
    components["schemas"]["Readiness"] = _readiness()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "homerun",
            "version": version,
            "description": "Submit jobs of containerised tasks and follow them to a result."
            ' Every error is {"error": {"code", "message", "details": [{"loc", "msg"}]}}.',
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "security": [{"bearer": []}],
        "paths": _paths(max_body_bytes),
        "components": components,
    }
