"""Bearer-token authentication (and the per-token rate limit that rides on it).

A source (client address) whose lookups keep failing is answered 429 without a lookup
for a while (``core.limits.SourceFailures``): a made-up token costs a primary query.

Endpoints call ``await require_token(request)`` first; it answers 401 or 429 by raising
``ApiError``, and leaves the caller's identity in ``request.state.token`` for whatever runs
later in the same request.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import cast

from starlette.requests import Request

from core.db import Databases, Row
from core.errors import UNAVAILABLE_ERRORS, ApiError, Detail
from core.state import get_state
from core.tokens import hash_token

__all__ = ["Principal", "authenticate", "require_token"]

PRIMARY_TIMEOUT_SECONDS = 2.0
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="homerun"'}
_LOOKUP = (
    "SELECT id, name, is_admin, egress_allow FROM tokens WHERE hash = :hash AND revoked_at IS NULL"
)


@dataclass(frozen=True)
class Principal:
    id: str
    name: str
    is_admin: bool
    # The token's own egress list (core/tokens.py): None the operator's, () no egress.
    egress_allow: tuple[str, ...] | None = None


def _unauthorized(message: str, msg: str) -> ApiError:
    return ApiError(
        401, "unauthorized", message, [Detail(["header", "Authorization"], msg)], _CHALLENGE
    )


def _too_many_failures(retry_after_seconds: int) -> ApiError:
    return ApiError(
        429,
        "too_many_auth_failures",
        "too many requests with invalid tokens from this address; retry in"
        f" {retry_after_seconds} s",
        [Detail(["header", "Authorization"], "recent tokens from this address were invalid")],
        {"Retry-After": str(retry_after_seconds)},
    )


async def _lookup(db: Databases, token_hash: bytes) -> Row | None:
    """Ask the primary, so a revocation or a new token counts at once (a replica could be a
    moment behind). Only when the primary cannot answer does the replica decide: then no
    token can be revoked anyway, and reads keep working through a primary outage."""
    values = {"hash": token_hash}
    try:
        row = await asyncio.wait_for(db.primary.fetch_one(_LOOKUP, values), PRIMARY_TIMEOUT_SECONDS)
        return cast("Row | None", row)  # databases' Record is a Mapping at run time
    except UNAVAILABLE_ERRORS:
        if db.replica is None or not db.replica_up:
            raise
        return await db.read_one(_LOOKUP, values)


async def require_token(request: Request) -> Principal:
    cached = getattr(request.state, "token", None)
    if isinstance(cached, Principal):
        return cached
    header = request.headers.get("authorization")
    if not header:
        raise _unauthorized("missing bearer token", "required: 'Bearer <token>'")
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        raise _unauthorized("malformed Authorization header", "expected 'Bearer <token>'")
    return await authenticate(request, value)


async def authenticate(request: Request, value: str) -> Principal:
    """The principal of a plaintext token however it arrived (the header, or the UI's
    session cookie: ``core.ui.session``), with the same failure accounting and rate limit;
    401/429 as ``ApiError``."""
    state = get_state(request)
    source = request.client.host if request.client is not None else "unknown"
    held = state.source_failures.blocked(source)
    if not held.allowed:
        raise _too_many_failures(held.retry_after_seconds)
    row = await _lookup(state.db, hash_token(value))
    if row is None:
        verdict = state.source_failures.failed(source)
        if not verdict.allowed:
            raise _too_many_failures(verdict.retry_after_seconds)
        raise _unauthorized("invalid or revoked token", "not a valid token")
    allow = row["egress_allow"]
    principal = Principal(
        id=str(row["id"]),
        name=row["name"],
        is_admin=bool(row["is_admin"]),
        egress_allow=None if allow is None else tuple(allow),
    )
    verdict = await state.rate_limiter.check(principal.id)
    if not verdict.allowed:
        raise ApiError(
            429,
            "rate_limited",
            f"rate limit of {state.rate_limiter.per_second:g} requests/s"
            f" (burst {state.rate_limiter.burst}) exceeded; retry in"
            f" {verdict.retry_after_seconds} s",
            headers={"Retry-After": str(verdict.retry_after_seconds)},
        )
    request.state.token = principal
    return principal
