"""The dashboard's session cookie: HttpOnly, SameSite=Strict, only for /ui/, Secure over
HTTPS (also behind a proxy that says so: uvicorn turns X-Forwarded-Proto into the scheme)."""

from __future__ import annotations

import pytest
from starlette.requests import Request
from starlette.responses import Response

from core.ui.session import COOKIE, COOKIE_PATH, Sessions


def _request(scheme: str) -> Request:
    return Request(
        {
            "type": "http",
            "scheme": scheme,
            "method": "POST",
            "path": "/ui/signin",
            "headers": [],
            "server": ("homerun.example", 443 if scheme == "https" else 80),
        }
    )


@pytest.mark.parametrize(("scheme", "secure"), [("https", True), ("http", False)])
def test_the_cookie_is_secure_exactly_over_https(scheme: str, secure: bool) -> None:
    sessions = Sessions("a-key", max_age_seconds=3600)
    response = Response()
    sessions.set(response, _request(scheme), sessions.new("the-token"))
    cookie = response.headers["set-cookie"]
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert cookie.startswith(f"{COOKIE}=")
    assert {"httponly", "samesite", "path", "max-age"} <= flags
    assert "samesite=strict" in cookie.lower() and f"path={COOKIE_PATH}".lower() in cookie.lower()
    assert ("secure" in flags) is secure
    # The token is inside, signed; a changed byte is no session.
    raw = cookie.split(";")[0].split("=", 1)[1]
    assert sessions.load(raw) is not None
    assert sessions.load(raw[:-1] + ("A" if raw[-1] != "A" else "B")) is None
