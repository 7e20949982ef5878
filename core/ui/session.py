"""The dashboard's browser session: one signed cookie, and the CSRF token bound to it.

The cookie holds the API token the person pasted (so every request checks it again with
``core.auth.authenticate``: a revoked token signs the browser out at its next request), a
random CSRF token, and when it was issued. It is signed with HMAC-SHA256 under the
``ui_session_key`` setting (a Swarm secret, the same on every API replica, so any replica
behind the edge accepts it), sent ``HttpOnly`` (page scripts cannot read it),
``SameSite=Strict`` (no other site's page can make the browser send it) and ``Secure`` when
the request came over HTTPS. A browser that has not signed in gets a session without a
token, so the sign-in form has a CSRF token too.

CSRF is session-bound: a state-changing request must carry the session's CSRF token in the
``X-CSRF-Token`` header or a ``csrf`` form field, compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

__all__ = ["COOKIE", "CSRF_FIELD", "CSRF_HEADER", "Session", "Sessions"]

COOKIE = "homerun_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"
# The cookie is sent only to the dashboard's own paths, never to /v1 (which wants a header).
COOKIE_PATH = "/ui"
# Bounds the work an oversized (forged) cookie can cause before its signature is checked.
MAX_COOKIE_CHARS = 4096


@dataclass(frozen=True)
class Session:
    token: str | None  # None: not signed in (yet)
    csrf: str
    issued_at: int

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sessions:
    """Makes, signs, reads and sets sessions under one key."""

    def __init__(self, key: str, max_age_seconds: int) -> None:
        # A key of its own for this use, whatever else the secret's bytes might be used for.
        self._key = hashlib.sha256(b"homerun-ui-session\x00" + key.encode()).digest()
        self.max_age_seconds = max_age_seconds

    def new(self, token: str | None) -> Session:
        return Session(token=token, csrf=secrets.token_urlsafe(32), issued_at=int(time.time()))

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())

    def dump(self, session: Session) -> str:
        payload = {"t": session.token, "c": session.csrf, "i": session.issued_at}
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{self._sign(body)}"

    def load(self, raw: str | None, *, now: float | None = None) -> Session | None:
        """The session a cookie holds, or None if it is missing, forged, malformed or old."""
        if not raw or len(raw) > MAX_COOKIE_CHARS or raw.count(".") != 1:
            return None
        body, signature = raw.split(".")
        if not hmac.compare_digest(signature.encode(), self._sign(body).encode()):
            return None
        try:
            payload = json.loads(_unb64(body))
            token, csrf, issued = payload["t"], payload["c"], payload["i"]
        except (ValueError, KeyError, TypeError):
            return None
        if not (token is None or isinstance(token, str)) or not isinstance(csrf, str):
            return None
        if not isinstance(issued, int):
            return None
        age = (time.time() if now is None else now) - issued
        if age > self.max_age_seconds or age < -60:
            return None
        return Session(token=token, csrf=csrf, issued_at=issued)

    def read(self, request: Request) -> Session | None:
        return self.load(request.cookies.get(COOKIE))

    def set(self, response: Response, request: Request, session: Session) -> None:
        response.set_cookie(
            COOKIE,
            self.dump(session),
            max_age=self.max_age_seconds,
            path=COOKIE_PATH,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    def clear(self, response: Response, request: Request) -> None:
        response.delete_cookie(
            COOKIE,
            path=COOKIE_PATH,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
