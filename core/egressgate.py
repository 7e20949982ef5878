"""The egress proxy's gate: a token's own, narrower allow-list, carried and checked statelessly.

An admin may narrow a token's egress to part of the operator's allow-list
(``homerun token egress``; ``tokens.egress_allow``: NULL the operator's whole list, an empty
list no egress at all). The proxy cannot ask Postgres (it must not join the data network),
so the runner hands each egress attempt a credential in its ``HTTP_PROXY``/``HTTPS_PROXY``
URL that carries the list itself, signed:

- user: base64url (unpadded) of the compact JSON ``[token id, list or null, expiry]``, the
  expiry (Unix seconds) the attempt's time limit plus a margin, so that a credential a task
  leaked stops working, and a token narrowed since holds for every later request;
- password: base64url (unpadded) of HMAC-SHA256(key, user), the key being the stack secret
  ``egress-proxy-key`` (mounted into the proxy and the runners only).

Squid runs this module twice (``squid_conf(..., gate=...)`` in ``core/egress.py`` writes the
lines): as its Basic authentication helper (``auth KEYFILE``: OK only for a credential the key
signed, so a task cannot widen its own list) and as an external ACL helper (``allows``: OK
only when the request's destination matches the token's list, or the list is null). Both sit
after the proxy's own refusals and before the operator's allow rules, so narrowing can only
remove. Matching is ``core.egress``'s, the one source of what an entry means.

Standard library only: the proxy's image carries this file and ``core/egress.py`` (copied in
by ``scripts/images.sh``), not the project's dependencies.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TextIO

from core import egress

__all__ = [
    "Grant",
    "credentials",
    "proxy_url",
    "read_key",
    "serve",
    "verify",
]


@dataclass(frozen=True)
class Grant:
    """What a verified credential says: whose it is and where it may go (None: the
    operator's whole list)."""

    token_id: str
    allow: tuple[str, ...] | None
    expires: int  # Unix seconds

    def allows(self, host: str, port: int) -> bool:
        """Whether the token's own list lets ``host:port`` through (the operator's rules
        are Squid's and come after)."""
        if self.allow is None:
            return True
        try:
            entries = egress.parse_allow_list(self.allow)
        except egress.EgressConfigError:
            return False  # signed, so ours: but a list this code cannot read allows nothing
        return any(entry.matches(host, port) for entry in entries)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, user: str) -> str:
    return _b64(hmac.new(key, user.encode("ascii"), hashlib.sha256).digest())


def credentials(
    key: bytes, token_id: str, allow: Sequence[str] | None, expires: int
) -> tuple[str, str]:
    """The (user, password) the proxy accepts for this token and list until ``expires``."""
    body = [token_id, None if allow is None else list(allow), expires]
    user = _b64(json.dumps(body, separators=(",", ":")).encode("utf-8"))
    return user, _sign(key, user)


def proxy_url(
    base_url: str, key: bytes, token_id: str, allow: Sequence[str] | None, expires: int
) -> str:
    """``base_url`` (``http://egress-proxy:3128``) with the token's credentials in it."""
    user, password = credentials(key, token_id, allow, expires)
    parts = urllib.parse.urlsplit(base_url)
    # Both halves are base64url: nothing in them needs quoting in a URL's userinfo.
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.netloc}"))


def _decode(user: str) -> Grant | None:
    try:
        body = json.loads(_unb64(user))
    except (binascii.Error, ValueError):
        return None
    if not (
        isinstance(body, list)
        and len(body) == 3
        and isinstance(body[0], str)
        and type(body[2]) is int
    ):
        return None
    allow = body[1]
    if allow is None:
        return Grant(body[0], None, body[2])
    if isinstance(allow, list) and all(isinstance(e, str) for e in allow):
        return Grant(body[0], tuple(allow), body[2])
    return None


def verify(key: bytes, user: str, password: str, now: float | None = None) -> Grant | None:
    """The grant a credential carries, or None when the key did not sign it or it expired."""
    if not key or not hmac.compare_digest(_sign(key, user).encode(), password.encode()):
        return None
    grant = _decode(user)
    if grant is None or grant.expires < (time.time() if now is None else now):
        return None
    return grant


def read_key(path: str) -> bytes:
    """The key as both sides read it: the secret file's text without surrounding space."""
    with open(path, encoding="utf-8") as f:
        return f.read().strip().encode("utf-8")


# --- the two Squid helpers (one request a line on stdin, one answer a line on stdout) --------


def _auth_answer(key: bytes, line: str) -> str:
    # Squid sends "user password", each URL-escaped.
    user, _, password = line.strip().partition(" ")
    grant = verify(key, urllib.parse.unquote(user), urllib.parse.unquote(password))
    return "OK" if grant is not None else "ERR message=not signed by this stack, or expired"


def _allows_answer(line: str) -> str:
    # "%LOGIN %DST %PORT", each URL-escaped, then the ACL's arguments ("-": none); the
    # login was verified by the auth helper.
    fields = [urllib.parse.unquote(f) for f in line.split()[:3]]
    if len(fields) != 3 or not fields[2].isdigit():
        return "ERR message=unreadable request"
    grant = _decode(fields[0])
    if grant is None:
        return "ERR message=unreadable credential"
    host = fields[1].strip("[]")
    verdict = "OK" if grant.allows(host, int(fields[2])) else "ERR"
    # log= goes to the access log (%ea): which token's list decided.
    return f"{verdict} log=token:{grant.token_id}"


def serve(argv: Sequence[str], lines: Iterable[str], out: TextIO) -> int:
    """Run one helper: ``auth KEYFILE`` or ``allows``; answers each line, flushed."""
    answer: Callable[[str], str]
    if len(argv) == 2 and argv[0] == "auth":
        answer = functools.partial(_auth_answer, read_key(argv[1]))
    elif list(argv) == ["allows"]:
        answer = _allows_answer
    else:
        print("usage: egressgate auth KEYFILE | allows", file=sys.stderr)
        return 2
    for line in lines:
        out.write(answer(line) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1:], sys.stdin, sys.stdout))
