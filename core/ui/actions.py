"""What a person does in the dashboard: sign in and out, submit, cancel, re-run; and the
live streams the pages listen to.

Every action is a POST checked for the session's CSRF token (``core.ui.web``) and carried
out by the JSON API's own endpoint function, so it is validated, recorded and enqueued
exactly as a client's request would be. The streams are the API's SSE endpoints, reached
with the session instead of a bearer header (a browser's EventSource cannot send one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from core.auth import authenticate
from core.endpoints import events, jobs
from core.errors import ApiError
from core.ui.calls import call
from core.ui.web import Handler, form_fields, model_of, render, signed_in, signed_out, ui_of
from wire import Job

__all__ = ["act", "routes", "safe_next", "to_job"]

MAX_TOKEN_CHARS = 512


def safe_next(raw: str | None) -> str:
    """Where to go after signing in: only a dashboard path on this site (no open redirect)."""
    if raw and raw.startswith("/ui/") and not raw.startswith("//") and "\\" not in raw:
        return raw
    return "/ui/jobs"


@signed_out
async def signin_page(request: Request) -> Response:
    expired = request.query_params.get("expired") == "1"
    return render(
        request,
        "signin.html",
        {"next": safe_next(request.query_params.get("next")), "expired": expired, "error": None},
    )


@signed_out
async def signin(request: Request) -> Response:
    form = await form_fields(request)
    token = form.get("token")
    target = safe_next(str(form.get("next") or ""))
    error = None
    if not isinstance(token, str) or not token.strip() or len(token) > MAX_TOKEN_CHARS:
        error = "paste an API token"
    else:
        try:
            await authenticate(request, token.strip())
        except ApiError as exc:
            if exc.status not in (401, 429):
                raise
            error = exc.message
    if error is not None or not isinstance(token, str):
        return render(
            request,
            "signin.html",
            {"next": target, "expired": False, "error": error},
            status_code=401,
        )
    ui = ui_of(request)
    response = RedirectResponse(target, status_code=303)
    # A new session (and CSRF token) at sign-in: one planted before it is worth nothing.
    ui.sessions.set(response, request, ui.sessions.new(token.strip()))
    return response


@signed_in
async def signout(request: Request) -> Response:
    response = RedirectResponse("/ui/signin", status_code=303)
    ui_of(request).sessions.clear(response, request)
    return response


def _wants_page(request: Request) -> bool:
    return request.headers.get("hx-request") != "true"


async def act(
    request: Request,
    endpoint: Handler,
    then: Callable[[Response], str],
    *,
    path_params: Mapping[str, Any] | None = None,
    body: Any = None,
) -> Response:
    """Run an API action; a plain form post gets a page back: 303 to ``then(answer)``, or
    the API's error shown (with its status)."""
    try:
        answer = await call(request, endpoint, path_params=path_params, body=body)
    except ApiError as exc:
        if not _wants_page(request):
            raise
        return render(request, "error.html", {"error": exc}, status_code=exc.status)
    return RedirectResponse(then(answer), status_code=303)


def to_job(answer: Response) -> str:
    return f"/ui/jobs/{model_of(answer, Job).id}"


async def _act(request: Request, endpoint: Handler) -> Response:
    return await act(request, endpoint, to_job)


@signed_in
async def cancel(request: Request) -> Response:
    return await _act(request, jobs.cancel_job)


@signed_in
async def rerun(request: Request) -> Response:
    return await _act(request, jobs.rerun_job)


@signed_in
async def token_events(request: Request) -> Response:
    return await events.token_events(request)


@signed_in
async def job_events(request: Request) -> Response:
    return await events.job_events(request)


routes: Iterable[BaseRoute] = [
    Route("/signin", signin_page, methods=["GET"]),
    Route("/signin", signin, methods=["POST"]),
    Route("/signout", signout, methods=["POST"]),
    Route("/events", token_events, methods=["GET"]),
    Route("/jobs/{job_id:uuid}/events", job_events, methods=["GET"]),
    Route("/jobs/{job_id:uuid}/cancel", cancel, methods=["POST"]),
    Route("/jobs/{job_id:uuid}/rerun", rerun, methods=["POST"]),
]
