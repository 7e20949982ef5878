"""Calling the JSON API's endpoint functions from a dashboard handler, in process.

The dashboard shows what the API answers: it calls the same endpoint function a client's
request reaches (``core.endpoints``), with the query parameters it wants, and reads the
``wire`` model off the answer. Validation, paging, replica reads and ownership are the
API's, once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message

from core.ui.web import Handler, model_of

__all__ = ["call", "read"]

M = TypeVar("M")


def _request(
    request: Request,
    query: Sequence[tuple[str, str]] | None,
    path_params: Mapping[str, Any] | None,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Request:
    scope = dict(request.scope)
    if query is not None:
        scope["query_string"] = urlencode(list(query)).encode()
    if path_params is not None:
        scope["path_params"] = dict(path_params)
    extra = {k.lower().encode(): v.encode() for k, v in (headers or {}).items()}
    if body is not None:
        extra[b"content-type"] = b"application/json"
        extra[b"content-length"] = str(len(body)).encode()
    if extra:
        kept = [(k, v) for k, v in request.scope["headers"] if k not in extra]
        scope["headers"] = kept + list(extra.items())
    if body is None:
        # scope["state"] is shared, so the principal the guard found travels along.
        return Request(scope, request.receive)

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


async def call(
    request: Request,
    endpoint: Handler,
    *,
    query: Sequence[tuple[str, str]] | None = None,
    path_params: Mapping[str, Any] | None = None,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The endpoint's answer to this request, with other query or path parameters if given,
    ``body`` (encoded as JSON) in place of the request's own (a posted form), and
    ``headers`` added (or replacing the request's of the same name)."""
    raw = None if body is None else json.dumps(body).encode()
    if query is None and path_params is None and raw is None and not headers:
        return await endpoint(request)
    return await endpoint(_request(request, query, path_params, raw, headers))


async def read(
    request: Request,
    endpoint: Handler,
    kind: type[M],
    *,
    query: Sequence[tuple[str, str]] | None = None,
    path_params: Mapping[str, Any] | None = None,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
) -> M:
    """The endpoint's ``wire`` model (an ``ApiError`` it raises goes up unchanged)."""
    answer = await call(
        request, endpoint, query=query, path_params=path_params, body=body, headers=headers
    )
    return model_of(answer, kind)
