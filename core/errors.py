"""The one error shape every API response uses, and the handlers that produce it.

``{"error": {"code": "...", "message": "...", "details": [{"loc": [...], "msg": "..."}]}}``:
``code`` is stable and machine-readable, ``message`` is for people, and each detail's
``loc`` is the path to the offending input (``["body", "tasks", 0, "payload", "script"]``,
``["query", "cursor"]``, ``["header", "Authorization"]``). The shape is the model
``wire.Error``; ``Detail`` is ``wire.ErrorDetail``, under the name the endpoints use.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import asyncpg
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from core.responses import ModelResponse
from wire import Error, ErrorBody
from wire import ErrorDetail as Detail

__all__ = [
    "UNAVAILABLE_ERRORS",
    "ApiError",
    "Detail",
    "api_error_handler",
    "error_body",
    "error_response",
    "http_exception_handler",
    "internal_error_handler",
    "unavailable_handler",
]

log = logging.getLogger(__name__)

# Codes for Starlette's own HTTPExceptions (unknown route, wrong method).
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}


class ApiError(Exception):
    """Raised anywhere under a request; answered as the documented JSON error."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Sequence[Detail] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = tuple(details)
        self.headers = dict(headers or {})


def error_body(code: str, message: str, details: Sequence[Detail] = ()) -> ErrorBody:
    return ErrorBody(code=code, message=message, details=list(details))


def error_response(
    status: int,
    code: str,
    message: str,
    details: Sequence[Detail] = (),
    headers: Mapping[str, str] | None = None,
) -> Response:
    return ModelResponse(
        Error(error=error_body(code, message, details)),
        status_code=status,
        headers=dict(headers or {}),
    )


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    if exc.status_code == 404:
        message = f"no such resource: {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, code, message, headers=exc.headers)


# Errors that mean "a server we depend on cannot answer now" (the primary is down or
# restarting): the client should retry, so 503 rather than 500.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    OSError,  # refused, reset, timed out
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.InterfaceError,  # the connection closed under us
    asyncpg.InternalClientError,  # a pooled connection broken by a server going away
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutting down, in recovery
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections
)


async def unavailable_handler(request: Request, exc: Exception) -> Response:
    log.warning(
        "%s %s: a dependency is unavailable: %r",
        request.method,
        request.url.path,
        exc,
        exc_info=exc,
    )
    return error_response(
        503,
        "unavailable",
        "the database is unavailable; retry shortly",
        headers={"Retry-After": "2"},
    )


async def internal_error_handler(request: Request, exc: Exception) -> Response:
    # Starlette's ServerErrorMiddleware re-raises after this answer is sent, so the server
    # logs the traceback; the client learns nothing about the internals.
    return error_response(500, "internal_error", "internal server error")
