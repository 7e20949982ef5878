"""/v1/schedules: a job body fired on a cron; create, list, read, change, pause, trigger.

The ticks are fired by the scheduler inside the notifier (``core.scheduler``); this module
only keeps the schedules and answers what they did. A schedule's ``job`` is validated at
creation (and at each change) exactly as ``POST /v1/jobs`` validates a body, and again at
every tick.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from core import handoff, storable, transitions, views
from core.auth import require_token
from core.cron import Cron, CronError
from core.cursor import decode_cursor, encode_cursor
from core.db import Row
from core.endpoints import secrets as secret_names
from core.errors import ApiError, Detail
from core.openapi import Document
from core.responses import ModelResponse
from core.state import AppState, get_state
from core.store import schedules as store
from core.validation import parse_json, refuse_closed_egress
from wire import Catchup, Job, Overlap, Schedule, SchedulePage, Tick, TickOutcome

__all__ = ["openapi_paths", "routes"]

DEFAULT_PAGE = 50
MAX_PAGE = 200
MAX_NAME = 200
MAX_CRON = 200
FIRE_TIMES_SHOWN = 5
# Every field a schedule has, with its default when created without it (None: required).
FIELDS: Mapping[str, Any] = {
    "name": None,
    "cron": None,
    "timezone": "UTC",
    "job": None,
    "overlap": Overlap.ALLOW.value,
    "catchup": Catchup.NONE.value,
    "paused": False,
}


def _invalid(loc: list[str | int], msg: str) -> ApiError:
    where = ".".join(str(p) for p in loc)
    return ApiError(422, "validation_error", f"{where}: {msg}", [Detail(loc, msg)])


def _not_found(schedule_id: uuid.UUID) -> ApiError:
    return ApiError(
        404,
        "not_found",
        f"no schedule {schedule_id}",
        [Detail(["path", "schedule_id"], "no such schedule")],
    )


def _text(body: Mapping[str, Any], name: str, limit: int) -> str:
    value = body[name]
    if not isinstance(value, str) or not value.strip():
        raise _invalid(["body", name], "must be a non-empty string")
    if len(value) > limit:
        raise _invalid(["body", name], f"longer than {limit} characters")
    if "\x00" in value:
        raise _invalid(["body", name], "contains a NUL character (\\u0000)")
    return value


def _choice(body: Mapping[str, Any], name: str, kind: type[Overlap] | type[Catchup]) -> str:
    value = body[name]
    known = [k.value for k in kind]
    if value not in known:
        raise _invalid(["body", name], f"must be one of {', '.join(known)}, got {value!r}")
    return str(value)


def _job(state: AppState, job: Any) -> dict[str, Any]:
    if not isinstance(job, dict):
        raise _invalid(["body", "job"], "must be an object: the body of POST /v1/jobs")
    try:
        state.validator.validate(job)
    except ApiError as exc:
        # The validator speaks of a submission's body; here that body is body.job.
        details = [Detail(["body", "job", *d.loc[1:]], d.msg) for d in exc.details]
        raise ApiError(
            exc.status, exc.code, "body.job" + exc.message.removeprefix("body"), details
        ) from None
    return job


def _checked(state: AppState, body: Any, *, partial: bool) -> dict[str, Any]:
    """The body's fields, each checked (with its default when creating); 422 names the field."""
    if not isinstance(body, dict):
        raise _invalid(["body"], "must be a JSON object")
    try:
        storable.check_json(body)  # every string is stored: no NUL, no lone surrogate
    except storable.NotStorable as exc:
        raise _invalid(["body"], f"cannot be stored: {exc}") from None
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise _invalid(["body", unknown[0]], f"unknown field (known: {', '.join(FIELDS)})")
    if not partial:
        missing = [name for name, default in FIELDS.items() if default is None and name not in body]
        if missing:
            raise _invalid(["body", missing[0]], "required")
        body = {**{k: v for k, v in FIELDS.items() if v is not None}, **body}
    checked: dict[str, Any] = {}
    if "name" in body:
        checked["name"] = _text(body, "name", MAX_NAME)
    if "cron" in body:
        checked["cron"] = _text(body, "cron", MAX_CRON)
    if "timezone" in body:
        checked["timezone"] = _text(body, "timezone", MAX_NAME)
    if "overlap" in body:
        checked["overlap"] = _choice(body, "overlap", Overlap)
    if "catchup" in body:
        checked["catchup"] = _choice(body, "catchup", Catchup)
    if "paused" in body:
        if not isinstance(body["paused"], bool):
            raise _invalid(["body", "paused"], "must be true or false")
        checked["paused"] = body["paused"]
    if "job" in body:
        checked["job"] = _job(state, body["job"])
    return checked


def _cron(cron: str, timezone: str) -> Cron:
    try:
        return Cron.parse(cron, timezone)
    except CronError as exc:
        raise _invalid(["body", exc.field], exc.message) from None


def _view(row: Row, ticks: Sequence[Row], now: datetime) -> Schedule:
    upcoming: list[datetime] = []
    try:
        upcoming = Cron.parse(row["cron"], row["timezone"]).upcoming(now, FIRE_TIMES_SHOWN)
    except CronError:
        pass  # stored valid; a zone gone from tzdata since has no fire times
    return Schedule(
        id=str(row["id"]),
        name=row["name"],
        cron=row["cron"],
        timezone=row["timezone"],
        job=json.loads(row["job"]) if isinstance(row["job"], str) else row["job"],
        overlap=Overlap(row["overlap"]),
        catchup=Catchup(row["catchup"]),
        paused=bool(row["paused"]),
        next_fire_times=upcoming,
        recent_ticks=[
            Tick(
                tick=t["tick"],
                outcome=TickOutcome(t["outcome"]),
                reason=t["reason"],
                manual=bool(t["manual"]),
                job_id=None if t["job_id"] is None else str(t["job_id"]),
            )
            for t in ticks
        ],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def _load(state: AppState, token_id: str, schedule_id: uuid.UUID) -> Schedule:
    row = await store.get(state.reads, token_id, str(schedule_id))
    if row is None:
        raise _not_found(schedule_id)
    ticks = await store.recent_ticks(state.reads, token_id, [str(row["id"])])
    return _view(row, ticks[str(row["id"])], datetime.now(UTC))


def _name_taken(name: str) -> ApiError:
    return ApiError(
        409,
        "name_taken",
        f"a schedule named {name!r} exists already",
        [Detail(["body", "name"], "already used by another schedule of this token")],
    )


async def create_schedule(request: Request) -> Response:
    principal = await require_token(request)
    state = get_state(request)
    fields = _checked(state, parse_json(await request.body()), partial=False)
    job = state.validator.validate(fields["job"])
    await secret_names.require_known(state, principal.id, job, ("body", "job"))
    refuse_closed_egress(job, principal.egress_allow, ("body", "job"))
    cron = _cron(fields["cron"], fields["timezone"])
    try:
        schedule_id = await store.create(
            state.db.primary,
            token_id=principal.id,
            next_tick=cron.next_after(datetime.now(UTC)),
            **fields,
        )
    except store.NameTaken:
        raise _name_taken(fields["name"]) from None
    await state.reads.note_write(principal.id)
    return ModelResponse(await _load(state, principal.id, uuid.UUID(schedule_id)), status_code=201)


async def list_schedules(request: Request) -> Response:
    principal = await require_token(request)
    state = get_state(request)
    params = request.query_params
    limit = DEFAULT_PAGE
    raw = params.get("limit")
    if raw is not None:
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
            msg = f"must be an integer between 1 and {MAX_PAGE}, got {raw[:20]!r}"
            raise ApiError(
                400,
                "invalid_query",
                f"query parameter limit: {msg}",
                [Detail(["query", "limit"], msg)],
            )
        limit = int(raw)
    after = None
    cursor = params.get("cursor")
    if cursor is not None:
        try:
            after = decode_cursor(cursor)
        except ValueError as exc:
            raise ApiError(
                400, "bad_cursor", f"invalid cursor: {exc}", [Detail(["query", "cursor"], str(exc))]
            ) from None
    rows = await store.list_page(state.reads, principal.id, limit=limit, after=after)
    page = rows[:limit]
    ticks = await store.recent_ticks(state.reads, principal.id, [str(r["id"]) for r in page])
    now = datetime.now(UTC)
    more = len(rows) > limit and page
    return ModelResponse(
        SchedulePage(
            schedules=[_view(r, ticks[str(r["id"])], now) for r in page],
            next_cursor=encode_cursor(page[-1]["created_at"], str(page[-1]["id"]))
            if more
            else None,
        )
    )


async def get_schedule(request: Request) -> Response:
    principal = await require_token(request)
    return ModelResponse(
        await _load(get_state(request), principal.id, request.path_params["schedule_id"])
    )


async def _change(request: Request, changes: dict[str, Any] | None) -> Response:
    """Apply ``changes``, or (None) the request body's, checked."""
    principal = await require_token(request)
    state = get_state(request)
    schedule_id: uuid.UUID = request.path_params["schedule_id"]
    if changes is None:
        changes = _checked(state, parse_json(await request.body()), partial=True)
        if "job" in changes:
            job = state.validator.validate(changes["job"])
            await secret_names.require_known(state, principal.id, job, ("body", "job"))
            refuse_closed_egress(job, principal.egress_allow, ("body", "job"))
    if "cron" in changes or "timezone" in changes:
        current = await store.get(state.reads, principal.id, str(schedule_id))
        if current is None:
            raise _not_found(schedule_id)
        merged = {"cron": current["cron"], "timezone": current["timezone"], **changes}
        cron = _cron(str(merged["cron"]), str(merged["timezone"]))
        # A new cron starts from now: the old one's pending ticks are not the new one's.
        changes["next_tick"] = cron.next_after(datetime.now(UTC))
    try:
        found = await store.update(state.db.primary, principal.id, str(schedule_id), changes)
    except store.NameTaken:
        raise _name_taken(str(changes.get("name"))) from None
    if not found:
        raise _not_found(schedule_id)
    await state.reads.note_write(principal.id)
    return ModelResponse(await _load(state, principal.id, schedule_id))


async def patch_schedule(request: Request) -> Response:
    return await _change(request, None)


async def pause_schedule(request: Request) -> Response:
    return await _change(request, {"paused": True})


async def resume_schedule(request: Request) -> Response:
    return await _change(request, {"paused": False})


async def delete_schedule(request: Request) -> Response:
    principal = await require_token(request)
    state = get_state(request)
    schedule_id: uuid.UUID = request.path_params["schedule_id"]
    if not await store.delete(state.db.primary, principal.id, str(schedule_id)):
        raise _not_found(schedule_id)
    await state.reads.note_write(principal.id)
    return Response(status_code=204)


async def trigger_schedule(request: Request) -> Response:
    principal = await require_token(request)
    state = get_state(request)
    schedule_id: uuid.UUID = request.path_params["schedule_id"]
    try:
        result = await transitions.trigger(
            state.db.primary,
            schedule_id=str(schedule_id),
            token_id=principal.id,
            at=datetime.now(UTC),
            validate=state.validator.validate,
        )
    except transitions.TickTaken as exc:
        raise ApiError(409, "tick_taken", f"{exc}: trigger again", []) from None
    if result is None:
        raise _not_found(schedule_id)
    done, fired = result
    await handoff.enqueue(state.queue_redis, done.ready)
    await state.reads.note_write(principal.id)
    assert fired.job_id is not None  # a manual tick always creates its job
    view = await views.load_job(state.reads, principal.id, fired.job_id, primary=True)
    assert view is not None  # just committed on the primary
    return ModelResponse(view, status_code=201)


async def schedules(request: Request) -> Response:
    # One route for the collection, so a wrong method gets a 405 that lists both.
    return await (create_schedule if request.method == "POST" else list_schedules)(request)


async def schedule(request: Request) -> Response:
    handler = {"GET": get_schedule, "PATCH": patch_schedule, "DELETE": delete_schedule}
    return await handler[request.method](request)


_ID = "{schedule_id:uuid}"
routes: Iterable[BaseRoute] = [
    Route("/v1/schedules", schedules, methods=["GET", "POST"], name="schedules"),
    Route(f"/v1/schedules/{_ID}", schedule, methods=["GET", "PATCH", "DELETE"], name="schedule"),
    Route(f"/v1/schedules/{_ID}/pause", pause_schedule, methods=["POST"], name="pause_schedule"),
    Route(f"/v1/schedules/{_ID}/resume", resume_schedule, methods=["POST"], name="resume_schedule"),
    Route(
        f"/v1/schedules/{_ID}/trigger", trigger_schedule, methods=["POST"], name="trigger_schedule"
    ),
]


def _body_schema(doc: Document, *, partial: bool) -> dict[str, Any]:
    text = {"type": "string", "minLength": 1, "maxLength": MAX_NAME}
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {**text, "description": "Unique among the token's schedules."},
            "cron": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_CRON,
                "description": "5 fields (minute hour day-of-month month day-of-week), 6 with"
                " a leading seconds field, or @hourly, @daily, @weekly, @monthly, @yearly.",
            },
            "timezone": {**text, "default": "UTC", "description": "An IANA zone."},
            "job": doc.submission(),
            "overlap": {"enum": [o.value for o in Overlap], "default": Overlap.ALLOW.value},
            "catchup": {"enum": [c.value for c in Catchup], "default": Catchup.NONE.value},
            "paused": {"type": "boolean", "default": False},
        },
    }
    if not partial:
        schema["required"] = ["name", "cron", "job"]
    return schema


def openapi_paths(doc: Document) -> dict[str, Any]:
    schedule_id = doc.path_id("schedule_id")
    not_found = doc.error("No such schedule for this token.")

    def action(operation_id: str, summary: str, answer: dict[str, Any]) -> dict[str, Any]:
        return {
            "post": {
                "operationId": operation_id,
                "summary": summary,
                "security": [{"bearer": []}],
                "parameters": [schedule_id],
                "responses": {**answer, **doc.authed(), "404": not_found, "413": doc.too_large()},
            }
        }

    invalid = doc.error(
        "Invalid: each detail names the field (body.cron, body.timezone, body.job.tasks.0...)."
    )
    return {
        "/v1/schedules": {
            "post": {
                "operationId": "createSchedule",
                "summary": "Create a schedule",
                "security": [{"bearer": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _body_schema(doc, partial=False)}},
                },
                "responses": {
                    "201": doc.ok("The schedule, with its next fire times.", Schedule),
                    "400": doc.error("Body is not JSON."),
                    **doc.authed(),
                    "409": doc.error("The token has a schedule of that name already."),
                    "413": doc.too_large(),
                    "422": invalid,
                },
            },
            "get": {
                "operationId": "listSchedules",
                "summary": "List the token's schedules, newest first",
                "security": [{"bearer": []}],
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_PAGE,
                            "default": DEFAULT_PAGE,
                        },
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "next_cursor of the previous page.",
                    },
                ],
                "responses": {
                    "200": doc.ok("A page of schedules.", SchedulePage),
                    "400": doc.error("A malformed limit or cursor."),
                    **doc.authed(),
                },
            },
        },
        "/v1/schedules/{schedule_id}": {
            "get": {
                "operationId": "getSchedule",
                "summary": "A schedule with its next 5 fire times and its newest ticks",
                "security": [{"bearer": []}],
                "parameters": [schedule_id],
                "responses": {
                    "200": doc.ok("The schedule.", Schedule),
                    **doc.authed(),
                    "404": not_found,
                },
            },
            "patch": {
                "operationId": "updateSchedule",
                "summary": "Change some of a schedule's fields (a new cron starts from now)",
                "security": [{"bearer": []}],
                "parameters": [schedule_id],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _body_schema(doc, partial=True)}},
                },
                "responses": {
                    "200": doc.ok("The schedule as changed.", Schedule),
                    "400": doc.error("Body is not JSON."),
                    **doc.authed(),
                    "404": not_found,
                    "409": doc.error("The token has a schedule of that name already."),
                    "413": doc.too_large(),
                    "422": invalid,
                },
            },
            "delete": {
                "operationId": "deleteSchedule",
                "summary": "Delete a schedule and its ticks (its jobs stay)",
                "security": [{"bearer": []}],
                "parameters": [schedule_id],
                "responses": {
                    "204": {"description": "Deleted."},
                    **doc.authed(),
                    "404": not_found,
                },
            },
        },
        "/v1/schedules/{schedule_id}/pause": action(
            "pauseSchedule",
            "Pause: its ticks are recorded as skipped (idempotent)",
            {"200": doc.ok("The schedule.", Schedule)},
        ),
        "/v1/schedules/{schedule_id}/resume": action(
            "resumeSchedule",
            "Resume a paused schedule (idempotent)",
            {"200": doc.ok("The schedule.", Schedule)},
        ),
        "/v1/schedules/{schedule_id}/trigger": action(
            "triggerSchedule",
            "A job now, recorded as a manual tick (overlap and paused do not apply)",
            {
                "201": doc.ok("The new job.", Job),
                "409": doc.error("A tick at the very same instant exists: trigger again."),
                "422": doc.error("The schedule's job no longer validates."),
            },
        ),
    }
