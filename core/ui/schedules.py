"""The dashboard's schedules: the list, one schedule (its next fire times and the ticks it
fired or skipped), and pause, resume and trigger, each through the API's own endpoint."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from core.endpoints import schedules
from core.ui.actions import act, to_job
from core.ui.calls import read
from core.ui.web import render, signed_in
from wire import Schedule, SchedulePage

__all__ = ["routes"]


@signed_in
async def list_page(request: Request) -> Response:
    query = [(k, v) for k, v in request.query_params.multi_items() if k == "cursor" and v]
    page = await read(request, schedules.list_schedules, SchedulePage, query=query)
    return render(request, "schedules.html", {"page": page})


@signed_in
async def schedule_page(request: Request) -> Response:
    schedule = await read(request, schedules.get_schedule, Schedule)
    return render(request, "schedule.html", {"s": schedule})


def _back(request: Request) -> str:
    return f"/ui/schedules/{request.path_params['schedule_id']}"


@signed_in
async def pause(request: Request) -> Response:
    return await act(request, schedules.pause_schedule, lambda _: _back(request))


@signed_in
async def resume(request: Request) -> Response:
    return await act(request, schedules.resume_schedule, lambda _: _back(request))


@signed_in
async def trigger(request: Request) -> Response:
    """A tick now: the browser lands on the job it made."""
    return await act(request, schedules.trigger_schedule, to_job)


_ID = "/schedules/{schedule_id:uuid}"
routes: Iterable[BaseRoute] = [
    Route("/schedules", list_page, methods=["GET"]),
    Route(_ID, schedule_page, methods=["GET"]),
    Route(f"{_ID}/pause", pause, methods=["POST"]),
    Route(f"{_ID}/resume", resume, methods=["POST"]),
    Route(f"{_ID}/trigger", trigger, methods=["POST"]),
]
