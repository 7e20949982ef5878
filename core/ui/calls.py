"""Calling the JSON API's endpoint functions from a dashboard handler, in process.

The dashboard shows what the API answers: it calls the same endpoint function a client's
request reaches (``core.endpoints``), with the query parameters it wants, and reads the
``wire`` model off the answer. Validation, paging, replica reads and ownership are the
API's, once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from core.ui.web import Handler, model_of

__all__ = ["call", "read"]

M = TypeVar("M")


def _request(
    request: Request,
    query: Sequence[tuple[str, str]] | None,
    path_params: Mapping[str, Any] | None,
) -> Request:
    scope = dict(request.scope)
    if query is not None:
        scope["query_string"] = urlencode(list(query)).encode()
    if path_params is not None:
        scope["path_params"] = dict(path_params)
    # scope["state"] is shared, so the principal the guard found travels along.
    return Request(scope, request.receive)


async def call(
    request: Request,
    endpoint: Handler,
    *,
    query: Sequence[tuple[str, str]] | None = None,
    path_params: Mapping[str, Any] | None = None,
) -> Response:
    """The endpoint's answer to this request, with other query or path parameters if given."""
    if query is None and path_params is None:
        return await endpoint(request)
    return await endpoint(_request(request, query, path_params))


async def read(
    request: Request,
    endpoint: Handler,
    kind: type[M],
    *,
    query: Sequence[tuple[str, str]] | None = None,
    path_params: Mapping[str, Any] | None = None,
) -> M:
    """The endpoint's ``wire`` model (an ``ApiError`` it raises goes up unchanged)."""
    return model_of(await call(request, endpoint, query=query, path_params=path_params), kind)
