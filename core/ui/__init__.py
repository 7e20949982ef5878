"""The dashboard: server-rendered pages under /ui/ of the API (same process and origin).

``mount(settings)`` is the one thing ``core.app`` takes from here: a Starlette ``Mount`` of
the pages (``pages``), the actions and live streams (``actions``), submitting (``submit``,
its form from ``forms``), schedules (``schedules``), secrets (``secrets``), and the static
files (``static/``: our ``ui.js`` and ``ui.css``, and the pinned, vendored htmx,
htmx-ext-sse and dagre in ``static/vendor/``). Without a session key (the
``ui_session_key`` setting, a Swarm secret) the dashboard is off and /ui/ says so.
"""

from __future__ import annotations

from pathlib import Path

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from core.settings import Settings, env_name
from core.ui import actions, pages, schedules, secrets, submit
from core.ui.session import Sessions
from core.ui.web import UI, SecurityHeaders, make_templates

__all__ = ["PREFIX", "mount"]

PREFIX = "/ui"
STATIC = Path(__file__).parent / "static"


def _off(settings: Settings) -> Mount:
    message = (
        "The dashboard is off: it needs a session key"
        f" ({env_name('ui_session_key')}_FILE naming a file, a Swarm secret in the stack).\n"
    )

    async def off(request: Request) -> Response:
        return PlainTextResponse(message, status_code=404)

    return Mount(PREFIX, routes=[Route("/{path:path}", off)])


def mount(settings: Settings) -> Mount:
    if not settings.ui_session_key:
        return _off(settings)
    ui = UI(
        templates=make_templates(),
        sessions=Sessions(settings.ui_session_key, settings.ui_session_seconds),
    )
    return Mount(
        PREFIX,
        routes=[
            *pages.routes,
            *actions.routes,
            *submit.routes,
            *schedules.routes,
            *secrets.routes,
            Mount("/static", StaticFiles(directory=STATIC), name="ui_static"),
        ],
        middleware=[Middleware(SecurityHeaders, ui=ui)],
    )
