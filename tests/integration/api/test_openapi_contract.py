"""schemathesis, driven by /openapi.json, over every operation with a valid token.

Positive cases (valid by the document) and negative ones (violating it) for every
operation, in-process over ASGI against a real primary, replica and queue Redis: no answer
may be a 5xx, use an undocumented status or content type, or have a body or headers off
the document.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.app import create_app
from core.sealing import generate_line
from tests.integration.api.conftest import ReplicatedDb
from tests.integration.api.support import plugin_manager, settings_for

pytestmark = pytest.mark.integration

# Per operation and mode; HOMERUN_SCHEMATHESIS_EXAMPLES raises it for a deeper run.
EXAMPLES = int(os.environ.get("HOMERUN_SCHEMATHESIS_EXAMPLES", "30"))
SSE_SECONDS = 0.3
# Not negative_data_rejection: it counts the Authorization header this test adds to every
# call as "missing", and unknown query parameters are ignored by design.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def test_every_operation_conforms_to_the_openapi_document(
    replicated_db: ReplicatedDb, queue_redis_url: str, events_redis_url: str, token: str
) -> None:
    settings = settings_for(
        replicated_db.primary,
        queue_redis_url,
        events_redis_url,
        database_replica_url=replicated_db.replica,
        sse_heartbeat_seconds=0.05,
        secrets_keyring=generate_line("k1"),
    )
    app = create_app(settings, plugin_manager=plugin_manager())
    auth = {"Authorization": f"Bearer {token}"}
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        results = list(schema.get_all_operations())
        operations = [result.ok() for result in results if isinstance(result, Ok)]
        assert len(operations) == len(results), results
        # (schemathesis leaves out the document's own path.)
        assert {op.label for op in operations} == {
            "POST /v1/jobs",
            "GET /v1/jobs",
            "GET /v1/jobs/{job_id}",
            "PATCH /v1/jobs/{job_id}",
            "GET /v1/jobs/{job_id}/tasks/{task_id}",
            "GET /v1/jobs/{job_id}/tasks/{task_id}/attempts/{number}",
            "POST /v1/jobs/{job_id}/cancel",
            "POST /v1/jobs/{job_id}/rerun",
            "POST /v1/schedules",
            "GET /v1/schedules",
            "GET /v1/schedules/{schedule_id}",
            "PATCH /v1/schedules/{schedule_id}",
            "DELETE /v1/schedules/{schedule_id}",
            "POST /v1/schedules/{schedule_id}/pause",
            "POST /v1/schedules/{schedule_id}/resume",
            "POST /v1/schedules/{schedule_id}/trigger",
            "GET /v1/task-types",
            "GET /healthz",
            "GET /readyz",
            "GET /metrics",
            "GET /v1/jobs/{job_id}/events",
            "GET /v1/events",
            "GET /v1/secrets",
            "PUT /v1/secrets/{name}",
            "DELETE /v1/secrets/{name}",
            "GET /v1/jobs/{job_id}/tasks/{task_id}/instances",
            "GET /v1/jobs/{job_id}/tasks/{task_id}/artifacts",
            "GET /v1/jobs/{job_id}/tasks/{task_id}/artifacts/{path}",
        }
        statuses: dict[str, set[int]] = {}
        for operation in operations:
            inputs = [operation.path_parameters, operation.query, operation.headers, operation.body]
            modes = [GenerationMode.POSITIVE]
            if any(len(group) for group in inputs):  # nothing to get wrong otherwise
                modes.append(GenerationMode.NEGATIVE)
            for mode in modes:

                @given(case=operation.as_strategy(generation_mode=mode))
                @hypothesis_settings(
                    max_examples=EXAMPLES,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                def exercise(case: Any) -> None:
                    # An event stream never ends by itself: keep what arrived in time.
                    timeout = SSE_SECONDS if case.operation.path.endswith("/events") else None
                    response = case.call_and_validate(headers=auth, checks=CHECKS, timeout=timeout)
                    statuses.setdefault(case.operation.label, set()).add(response.status_code)

                exercise()
        # The run reached the interesting answers, not only 401s and 404s.
        assert {201, 422} <= statuses["POST /v1/jobs"], statuses
        assert 200 in statuses["GET /v1/jobs"], statuses
        assert 422 in statuses["POST /v1/schedules"], statuses
        assert 200 in statuses["GET /v1/schedules"], statuses
    finally:
        asgi.shutdown_lifespans()
