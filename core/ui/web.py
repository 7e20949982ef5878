"""The dashboard's request plumbing: templates, the signed-in guard, CSRF, security headers.

Every dashboard handler is wrapped by ``signed_in`` (or ``signed_out`` for the sign-in
form). The guard reads the session cookie (``core.ui.session``), refuses a state-changing
request whose CSRF token does not match (403, the API's error shape), checks the session's
token with ``core.auth.authenticate`` exactly as a bearer header is checked (a revoked one
clears the cookie and sends the browser to the sign-in form), and leaves the principal in
``request.state.token``, where ``core.auth.require_token`` finds it: the dashboard then
calls the JSON API's own endpoint functions (``core.endpoints``) and reads the ``wire``
model off their ``ModelResponse``, so it has no queries or rules of its own for the same
thing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl, quote

import jinja2
import msgspec
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import wire
from core.auth import authenticate
from core.errors import ApiError, Detail, error_response
from core.ui.session import CSRF_FIELD, CSRF_HEADER, Session, Sessions

__all__ = [
    "NAV",
    "UI",
    "Handler",
    "SecurityHeaders",
    "form_fields",
    "model_of",
    "render",
    "signed_in",
    "signed_out",
    "ui_of",
]

Handler = Callable[[Request], Awaitable[Response]]
M = TypeVar("M")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SCOPE_KEY = "homerun.ui"
# The pages in the navigation bar: (path under /ui, label). A new page is a route in
# core/ui/ (pages.py, or a module of its own), a template, and a line here.
NAV: list[tuple[str, str]] = [
    ("/jobs", "Jobs"),
    ("/submit", "Submit"),
    ("/schedules", "Schedules"),
    ("/secrets", "Secrets"),
    ("/task-types", "Task types"),
    ("/system", "System"),
]

# script-src 'self': no inline script, no eval; style-src 'self': no inline style either.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}


@dataclass(frozen=True)
class UI:
    """What the dashboard's handlers share: the templates and the session signer."""

    templates: jinja2.Environment
    sessions: Sessions


def make_templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("core.ui", "templates"),
        # Everything is escaped, in every template, whatever its file name.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["duration"] = _duration
    env.filters["pretty"] = _pretty
    env.filters["compact"] = _compact
    env.globals["NAV"] = NAV
    return env


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _duration(pair: tuple[datetime | None, datetime | None]) -> str:
    start, end = pair
    if start is None:
        return ""
    if end is None:
        return "…"
    seconds = (end - start).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def _compact(value: Any) -> str:
    """JSON on one line, as text (autoescaped where it is placed, unlike ``tojson``'s
    \\u003c escapes, which are for attributes and show as such in text)."""
    return wire.dumps(wire.to_builtins(value), ensure_ascii=False, sort_keys=True)


def _pretty(value: Any) -> str:
    return wire.dumps(wire.to_builtins(value), indent=2, ensure_ascii=False, sort_keys=True)


class SecurityHeaders:
    """Sets the dashboard's headers on every answer under /ui and hands handlers the ``UI``."""

    def __init__(self, app: ASGIApp, ui: UI) -> None:
        self.app = app
        self.ui = ui

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[SCOPE_KEY] = self.ui

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for name, value in _HEADERS.items():
                    if name.encode() not in present:
                        headers.append((name.encode(), value.encode()))
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def ui_of(request: Request) -> UI:
    return cast(UI, request.scope[SCOPE_KEY])


def session_of(request: Request) -> Session:
    return cast(Session, request.state.ui_session)


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    session: Session | None = None,
) -> HTMLResponse:
    """A template rendered with what every page needs (the CSRF token, the navigation)."""
    ui = ui_of(request)
    current = session or getattr(request.state, "ui_session", None)
    body = ui.templates.get_template(template).render(
        {
            "csrf": current.csrf if current is not None else "",
            "signed_in": current is not None and current.token is not None,
            "path": request.url.path,
            "principal": getattr(request.state, "token", None),
            **(context or {}),
        }
    )
    return HTMLResponse(body, status_code=status_code)


def model_of(response: Response, kind: type[M]) -> M:
    """The ``wire`` model an endpoint answered with (``core.responses.ModelResponse``)."""
    model = getattr(response, "model", None)
    if isinstance(model, kind):
        return model
    return msgspec.json.decode(response.body, type=kind)


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def _to_signin(request: Request, *, expired: bool = False) -> Response:
    target = f"/ui/signin?next={quote(request.url.path, safe='/')}"
    if expired:
        target += "&expired=1"
    if _is_htmx(request) or request.method not in SAFE_METHODS:
        response: Response = Response(status_code=401, headers={"HX-Redirect": target})
    else:
        response = RedirectResponse(target, status_code=303)
    return response


async def _csrf_given(request: Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header is not None:
        return header
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        return (await form_fields(request)).get(CSRF_FIELD)
    return None


async def form_fields(request: Request) -> dict[str, str]:
    """A urlencoded form's fields (the dashboard's forms are all small and urlencoded, so
    this needs no multipart parser); the last value of a repeated field wins."""
    return dict(
        parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    )


def _csrf_refused() -> Response:
    return error_response(
        403,
        "csrf_failed",
        "missing or wrong CSRF token: reload the page and try again",
        [Detail(["header", "X-CSRF-Token"], "must be the token of this browser session")],
    )


def _error_page(request: Request, exc: ApiError) -> Response:
    response = render(request, "error.html", {"error": exc}, status_code=exc.status)
    response.headers.update(exc.headers)
    return response


def signed_in(handler: Handler) -> Handler:
    """Guard a dashboard handler: CSRF on state-changing methods, then a live token."""

    async def guarded(request: Request) -> Response:
        ui = ui_of(request)
        session = ui.sessions.read(request)
        if request.method not in SAFE_METHODS and (
            session is None or not session.csrf_ok(await _csrf_given(request))
        ):
            return _csrf_refused()
        if session is None or session.token is None:
            return _to_signin(request)
        try:
            request.state.token = await authenticate(request, session.token)
        except ApiError as exc:
            if exc.status != 401:
                raise
            # Revoked (or deleted) since sign-in: this browser is signed out now.
            response = _to_signin(request, expired=True)
            ui.sessions.clear(response, request)
            return response
        request.state.ui_session = session
        try:
            return await handler(request)
        except ApiError as exc:
            if request.method in SAFE_METHODS and not _is_htmx(request):
                return _error_page(request, exc)
            raise

    return guarded


def signed_out(handler: Handler) -> Handler:
    """For the sign-in form: a session (for its CSRF token) but no token required."""

    async def guarded(request: Request) -> Response:
        ui = ui_of(request)
        session = ui.sessions.read(request)
        if request.method not in SAFE_METHODS and (
            session is None or not session.csrf_ok(await _csrf_given(request))
        ):
            return _csrf_refused()
        fresh = session is None
        request.state.ui_session = session if session is not None else ui.sessions.new(None)
        response = await handler(request)
        if fresh and "set-cookie" not in response.headers:
            ui.sessions.set(response, request, request.state.ui_session)
        return response

    return guarded
