"""Submitting a job from the dashboard: the form generated from the API's submission
schema and the task types' payload schemas (``core.ui.forms``), and the JSON editor
beside it.

Both end in the JSON API's own ``POST /v1/jobs`` (``core.endpoints.jobs.create_job``): the
editor's body as it is (``ui.js`` posts it and places the 422's details in the text), the
form's read back into a body here. A 422 re-renders the form with what was typed and each
of the API's messages at the field its ``loc`` names.

The form's shape (which task types, in order) is its address, ``/ui/submit?task=shell&
task=python``, chosen with a small GET form above it: a bookmark opens the same form.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from core.endpoints import jobs, task_types
from core.errors import ApiError
from core.state import get_state
from core.ui import forms
from core.ui.calls import read
from core.ui.web import form_fields, render, signed_in
from wire import Job, TaskTypeInfo, TaskTypeList

__all__ = ["routes"]

DEFAULT_TASKS = ("shell",)
MAX_FORM_TASKS = 20
TYPE_FIELD = "task"  # repeated: the task types of the form, in order
IDEMPOTENCY_FIELD = "idempotency_key"


def _chosen(names: Sequence[str], types: Sequence[TaskTypeInfo]) -> list[str]:
    known = {t.name for t in types}
    chosen = [n for n in names if n in known][:MAX_FORM_TASKS]
    return chosen or [n for n in DEFAULT_TASKS if n in known] or [t.name for t in types[:1]]


def _form(request: Request, types: Sequence[TaskTypeInfo], chosen: Sequence[str]) -> forms.Form:
    # The envelope schemas the API validates with (and /openapi.json publishes).
    schemas = get_state(request).validator.schemas
    return forms.job_form(schemas.submission, schemas.task, types, chosen)


def _page(
    request: Request,
    types: Sequence[TaskTypeInfo],
    chosen: Sequence[str],
    *,
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, list[str]] | None = None,
    loose: Sequence[str] = (),
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "submit_form.html",
        {
            "form": _form(request, types, chosen),
            "task_types": types,
            "chosen": chosen,
            "values": values or {},
            "errors": errors or {},
            "loose": loose,
            # One key per form shown: a second press of Submit (or a re-sent POST) answers
            # the job the first made, as Idempotency-Key does for any client.
            "idempotency_key": str(uuid.uuid4()),
        },
        status_code=status_code,
    )


@signed_in
async def form_page(request: Request) -> Response:
    types = (await read(request, task_types.list_task_types, TaskTypeList)).task_types
    wanted = [v for v in request.query_params.getlist(TYPE_FIELD) if v]
    return _page(request, types, _chosen(wanted, types))


@signed_in
async def json_page(request: Request) -> Response:
    example = {
        "name": "example",
        "tasks": [{"name": "hello", "type": "shell", "payload": {"script": "echo hello"}}],
    }
    return render(request, "submit.html", {"example": json.dumps(example, indent=2)})


@signed_in
async def submit_form(request: Request) -> Response:
    posted = await form_fields(request)
    types = (await read(request, task_types.list_task_types, TaskTypeList)).task_types
    # The task types travel as one hidden field (their order is the form's).
    chosen = _chosen(posted.get("types", "").split(","), types)
    form = _form(request, types, chosen)
    reading = forms.job_body(form, posted)
    if reading.errors:
        return _page(request, types, chosen, values=posted, errors=reading.errors, status_code=422)
    try:
        key = posted.get(IDEMPOTENCY_FIELD, "")
        job = await read(
            request,
            jobs.create_job,
            Job,
            body=reading.body,
            headers={"Idempotency-Key": key} if key else None,
        )
    except ApiError as exc:
        if exc.status not in (400, 409, 413, 422):
            raise
        placed, loose = forms.place_errors(form, exc.details)
        # The API's message heads the form; a detail no field holds is listed under it.
        return _page(
            request,
            types,
            chosen,
            values=posted,
            errors=placed,
            loose=[exc.message, *loose],
            status_code=exc.status,
        )
    return RedirectResponse(f"/ui/jobs/{job.id}", status_code=303)


@signed_in
async def submit_json(request: Request) -> Response:
    """POST /v1/jobs itself: its JSON answer (the job, or the error naming each field)."""
    return await jobs.create_job(request)


routes: Iterable[BaseRoute] = [
    Route("/submit", form_page, methods=["GET"]),
    Route("/submit", submit_json, methods=["POST"]),
    Route("/submit/json", json_page, methods=["GET"]),
    Route("/submit/form", submit_form, methods=["POST"]),
]
