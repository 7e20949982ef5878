"""The dashboard's secrets: the token's secret names and times (never a value: the API
answers none), a form that sets one (``PUT /v1/secrets/{name}``) and a button that deletes
one, each through the API's own endpoint. A value goes from the form to the sealing code
and is not rendered back, not even after an error."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from core.endpoints import secrets
from core.errors import ApiError
from core.ui.actions import act
from core.ui.calls import call, read
from core.ui.web import form_fields, render, signed_in
from wire import SecretInfo, SecretList

__all__ = ["routes"]

# Where each part of an error's loc is on the form.
_FIELDS: dict[tuple[str | int, ...], str] = {
    ("path", "name"): "name",
    ("body", "value"): "value",
    ("body",): "value",
}


async def _page(
    request: Request,
    *,
    name: str = "",
    errors: Mapping[str, Sequence[str]] | None = None,
    message: str | None = None,
    status_code: int = 200,
) -> Response:
    listed: list[SecretInfo] = []
    unavailable = None
    try:
        listed = (await read(request, secrets.list_secrets, SecretList)).secrets
    except ApiError as exc:
        if exc.status != 503:
            raise
        unavailable = exc.message
    return render(
        request,
        "secrets.html",
        {
            "secrets": listed,
            "unavailable": unavailable,
            "name": name,
            "errors": errors or {},
            "message": message,
        },
        status_code=status_code,
    )


@signed_in
async def secrets_page(request: Request) -> Response:
    return await _page(request)


@signed_in
async def set_secret(request: Request) -> Response:
    posted = await form_fields(request)
    name = posted.get("name", "").strip()
    try:
        await call(
            request,
            secrets.put_secret,
            path_params={"name": name},
            body={"value": posted.get("value", "")},
        )
    except ApiError as exc:
        placed: dict[str, list[str]] = {}
        for d in exc.details:
            placed.setdefault(_FIELDS.get(tuple(d.loc[:2]), "name"), []).append(d.msg)
        return await _page(
            request, name=name, errors=placed, message=exc.message, status_code=exc.status
        )
    return RedirectResponse("/ui/secrets", status_code=303)


@signed_in
async def delete_secret(request: Request) -> Response:
    return await act(request, secrets.delete_secret, lambda _: "/ui/secrets")


routes: Iterable[BaseRoute] = [
    Route("/secrets", secrets_page, methods=["GET"]),
    Route("/secrets", set_secret, methods=["POST"]),
    Route("/secrets/{name}/delete", delete_secret, methods=["POST"]),
]
