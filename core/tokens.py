"""API tokens: created once, shown once, stored only as a sha256 hash.

The CLI's ``homerun token create|list|revoke`` and the API's start-up (the admin token, read
from a secret file) both go through here, always against the primary.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from databases import Database

from core import egress

__all__ = [
    "TOKEN_PREFIX",
    "AdminTokenRefused",
    "TokenInfo",
    "create_token",
    "egress_allow_of",
    "ensure_admin_token",
    "hash_token",
    "list_tokens",
    "narrowed_egress",
    "parse_retention",
    "revoke_token",
    "set_egress",
    "set_retention",
]

# A recognisable prefix lets secret scanners spot a leaked homerun token.
TOKEN_PREFIX = "hr_"
ADMIN_TOKEN_NAME = "admin"


@dataclass(frozen=True)
class TokenInfo:
    id: str
    name: str
    is_admin: bool
    created_at: datetime
    revoked_at: datetime | None
    # The token's own retention period in seconds (0: forever); None: the setting's.
    retention_seconds: int | None = None
    # The token's own egress allow-list (None: the operator's whole list; (): no egress).
    egress_allow: tuple[str, ...] | None = None


def hash_token(plaintext: str) -> bytes:
    # Tokens are 256 random bits: a fast hash is enough, a slow KDF would only cost latency.
    return hashlib.sha256(plaintext.encode("utf-8")).digest()


async def create_token(db: Database, name: str, *, admin: bool = False) -> tuple[str, str]:
    """Create a token; return ``(token_id, plaintext)``. The plaintext is not stored."""
    if not name.strip():
        raise ValueError("a token needs a non-empty name")
    token_id = str(uuid.uuid4())
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    await db.execute(
        "INSERT INTO tokens (id, name, hash, is_admin, webhook_secret)"
        " VALUES (:id, :name, :hash, :admin, :secret)",
        {
            "id": token_id,
            "name": name,
            "hash": hash_token(plaintext),
            "admin": admin,
            "secret": secrets.token_urlsafe(32),
        },
    )
    return token_id, plaintext


async def list_tokens(db: Database) -> list[TokenInfo]:
    rows = await db.fetch_all(
        "SELECT id, name, is_admin, created_at, revoked_at, retention_seconds, egress_allow"
        " FROM tokens ORDER BY created_at, id"
    )
    return [
        TokenInfo(
            id=str(r["id"]),
            name=r["name"],
            is_admin=bool(r["is_admin"]),
            created_at=r["created_at"],
            revoked_at=r["revoked_at"],
            retention_seconds=r["retention_seconds"],
            egress_allow=None if r["egress_allow"] is None else tuple(r["egress_allow"]),
        )
        for r in rows
    ]


async def revoke_token(db: Database, token_id: str) -> bool:
    """Revoke a token; False if no such live token. Its jobs stay."""
    try:
        uuid.UUID(token_id)
    except ValueError:
        return False
    revoked = await db.fetch_val(
        "UPDATE tokens SET revoked_at = now() WHERE id = :id AND revoked_at IS NULL RETURNING id",
        {"id": token_id},
    )
    return revoked is not None


class AdminTokenRefused(Exception):
    """The configured admin secret names a token that must not become the admin token."""


async def ensure_admin_token(db: Database, plaintext: str) -> str:
    """Make the operator's admin token (from a secret file) valid; return its id.

    Idempotent and safe when several API replicas start at once: the row is keyed by the
    hash, so they all insert or find the same row. A rotated secret adds a new admin row;
    revoke the old one with ``homerun token revoke``.

    Only a hash never seen before becomes an admin row. Raises ``AdminTokenRefused`` when
    the hash belongs to a revoked token (a revocation is final: restarting the API must not
    undo it) or to a token created without admin rights (promoting it would hand admin to
    whoever holds that token, behind the operator's back). Neither row is changed.
    """
    token_hash = hash_token(plaintext)
    # Derived from the hash so that every replica proposes the same id.
    token_id = str(uuid.UUID(bytes=token_hash[:16], version=4))
    # DO NOTHING, not DO UPDATE: an existing row is judged below, never rewritten. A
    # concurrent replica's insert makes this one wait for its commit, then find the row.
    inserted = await db.fetch_val(
        "INSERT INTO tokens (id, name, hash, is_admin, webhook_secret)"
        " VALUES (:id, :name, :hash, true, :secret)"
        " ON CONFLICT (hash) DO NOTHING"
        " RETURNING id",
        {
            "id": token_id,
            "name": ADMIN_TOKEN_NAME,
            "hash": token_hash,
            "secret": secrets.token_urlsafe(32),
        },
    )
    if inserted is not None:
        return str(inserted)
    row = await db.fetch_one(
        "SELECT id, is_admin, revoked_at FROM tokens WHERE hash = :hash", {"hash": token_hash}
    )
    if row is None:  # deleted between the two statements: nothing in homerun deletes tokens
        raise AdminTokenRefused("the admin token's row vanished while the API started")
    if row["revoked_at"] is not None:
        raise AdminTokenRefused(
            f"the configured admin token (id {row['id']}) was revoked at"
            f" {row['revoked_at'].isoformat()}; revocation is final: put a new secret in"
            " the admin token file to have an admin token again"
        )
    if not row["is_admin"]:
        raise AdminTokenRefused(
            f"the configured admin token is the non-admin token {row['id']}; it is not"
            " promoted: put a newly generated secret in the admin token file"
        )
    return str(row["id"])


# --- retention: a token's own period (notifier/retention.py deletes what outlived it)

_PERIOD_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# tokens.retention_seconds is a Postgres integer.
MAX_RETENTION_SECONDS = 2**31 - 1


def parse_retention(text: str) -> int | None:
    """``default`` (None: the setting's), ``forever`` (0), or a count of s, m, h or d
    (``30d``; a bare number is seconds). Raises ``ValueError`` saying what it expects."""
    word = text.strip().lower()
    if word == "default":
        return None
    if word == "forever":
        return 0
    unit = _PERIOD_UNITS.get(word[-1:], None)
    number = word[:-1] if unit is not None else word
    if not number.isdigit():
        raise ValueError(f"a period is default, forever, or a number with s, m, h or d: {text!r}")
    seconds = int(number) * (unit or 1)
    if seconds > MAX_RETENTION_SECONDS:
        raise ValueError(f"{text!r} is longer than {MAX_RETENTION_SECONDS} seconds")
    return seconds


async def set_retention(db: Database, token_id: str, seconds: int | None) -> bool:
    """Set the token's own retention period (None: the setting's, 0: forever); False if no
    such token. Its jobs already past the new period go at the purger's next pass."""
    try:
        uuid.UUID(token_id)
    except ValueError:
        return False
    updated = await db.fetch_val(
        "UPDATE tokens SET retention_seconds = :seconds WHERE id = :id RETURNING id",
        {"id": token_id, "seconds": seconds},
    )
    return updated is not None


# --- egress: a token's own allow-list, narrowing the operator's (core/egressgate.py)


def narrowed_egress(operator_allow: Sequence[str], entries: Sequence[str]) -> tuple[str, ...]:
    """A token's list from its text entries, normalised (``host:port`` per port), each one
    inside the operator's list; ``ValueError`` names the first entry that is not."""
    operator = egress.parse_allow_list(operator_allow)
    out: list[str] = []
    for raw in entries:
        try:
            [entry] = egress.parse_allow_list([raw]) or [None]
        except egress.EgressConfigError as exc:
            raise ValueError(str(exc)) from None
        if entry is None:
            raise ValueError("an egress allow-list entry is empty")
        if not entry.within(operator):
            raise ValueError(
                f"egress allow-list entry {raw!r} is outside the operator's allow-list"
                f" ({', '.join(operator_allow) or 'empty'}): a token's list can only narrow it"
            )
        host = ("*." if entry.wildcard else "") + entry.host
        out += [f"{host}:{port}" for port in entry.ports if f"{host}:{port}" not in out]
    return tuple(out)


async def set_egress(db: Database, token_id: str, allow: Sequence[str] | None) -> bool:
    """Set the token's own egress list (None: the operator's whole list, empty: no egress);
    False if no such token. Checked by ``narrowed_egress`` first; the next attempt uses it."""
    try:
        uuid.UUID(token_id)
    except ValueError:
        return False
    updated = await db.fetch_val(
        "UPDATE tokens SET egress_allow = :allow WHERE id = :id RETURNING id",
        {"id": token_id, "allow": None if allow is None else list(allow)},
    )
    return updated is not None


async def egress_allow_of(db: Database, token_id: str) -> tuple[str, ...] | None:
    """The token's own egress list as stored (None: the operator's whole list)."""
    row = await db.fetch_one("SELECT egress_allow FROM tokens WHERE id = :id", {"id": token_id})
    if row is None or row["egress_allow"] is None:
        return None
    return tuple(row["egress_allow"])
