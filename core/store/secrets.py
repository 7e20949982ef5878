"""Every statement on the ``secrets`` table; each scoped to the asking token.

Values go in and out sealed (``core.sealing``): this module never sees a plaintext except
in ``reseal_all``, which opens and re-seals every row under the current key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from databases import Database

from core.consistency import Reads
from core.sealing import Keyring, Sealed

__all__ = [
    "SecretName",
    "delete",
    "list_names",
    "put",
    "reseal_all",
    "sealed_values",
    "unknown_names",
]

# How many rows one re-seal transaction handles: bounded locks, bounded memory.
RESEAL_BATCH = 100


@dataclass(frozen=True)
class SecretName:
    name: str
    key_id: str
    created_at: datetime
    updated_at: datetime


async def put(db: Database, token_id: str, name: str, sealed: Sealed) -> bool:
    """Create or replace; True if it was created."""
    created = await db.fetch_val(
        "INSERT INTO secrets (token_id, name, key_id, nonce, ciphertext)"
        " VALUES (:token, :name, :key_id, :nonce, :ciphertext)"
        " ON CONFLICT (token_id, name) DO UPDATE SET key_id = EXCLUDED.key_id,"
        " nonce = EXCLUDED.nonce, ciphertext = EXCLUDED.ciphertext,"
        " updated_at = clock_timestamp()"
        " RETURNING (xmax = 0)",
        {
            "token": token_id,
            "name": name,
            "key_id": sealed.key_id,
            "nonce": sealed.nonce,
            "ciphertext": sealed.ciphertext,
        },
    )
    return bool(created)


async def list_names(reads: Reads, token_id: str) -> list[SecretName]:
    rows = await reads.all(
        token_id,
        "SELECT name, key_id, created_at, updated_at FROM secrets WHERE token_id = :token"
        " ORDER BY name",
        {"token": token_id},
    )
    return [SecretName(r["name"], r["key_id"], r["created_at"], r["updated_at"]) for r in rows]


async def delete(db: Database, token_id: str, name: str) -> bool:
    found = await db.fetch_val(
        "DELETE FROM secrets WHERE token_id = :token AND name = :name RETURNING true",
        {"token": token_id, "name": name},
    )
    return bool(found)


async def unknown_names(db: Database, token_id: str, names: Sequence[str]) -> set[str]:
    """The ``names`` the token has no secret of (asked of the primary: read-your-writes)."""
    if not names:
        return set()
    rows = await db.fetch_all(
        "SELECT name FROM secrets WHERE token_id = :token AND name = ANY(:names)",
        {"token": token_id, "names": list(set(names))},
    )
    return set(names) - {r["name"] for r in rows}


async def sealed_values(db: Database, token_id: str, names: Sequence[str]) -> dict[str, Sealed]:
    """The sealed value of each of ``names`` the token has (the runner opens them)."""
    if not names:
        return {}
    rows = await db.fetch_all(
        "SELECT name, key_id, nonce, ciphertext FROM secrets"
        " WHERE token_id = :token AND name = ANY(:names)",
        {"token": token_id, "names": list(set(names))},
    )
    return {r["name"]: Sealed(r["key_id"], bytes(r["nonce"]), bytes(r["ciphertext"])) for r in rows}


async def reseal_all(db: Database, keyring: Keyring) -> int:
    """Re-seal every row not under the current key; the number re-sealed.

    Batches of ``RESEAL_BATCH`` rows, each in its own transaction with the rows locked, so a
    concurrent PUT is never overwritten with an older value, and an interrupted run resumes
    where it stopped (the rows done are under the current key already).
    """
    done = 0
    while True:
        async with db.connection() as conn, conn.transaction():
            rows = await conn.fetch_all(
                "SELECT token_id, name, key_id, nonce, ciphertext FROM secrets"
                " WHERE key_id <> :current ORDER BY token_id, name LIMIT :n"
                " FOR UPDATE SKIP LOCKED",
                {"current": keyring.current, "n": RESEAL_BATCH},
            )
            for r in rows:
                token_id, name = str(r["token_id"]), r["name"]
                value = keyring.open(
                    token_id, name, Sealed(r["key_id"], bytes(r["nonce"]), bytes(r["ciphertext"]))
                )
                sealed = keyring.seal(token_id, name, value)
                await conn.execute(
                    "UPDATE secrets SET key_id = :key_id, nonce = :nonce,"
                    " ciphertext = :ciphertext WHERE token_id = :token AND name = :name",
                    {
                        "key_id": sealed.key_id,
                        "nonce": sealed.nonce,
                        "ciphertext": sealed.ciphertext,
                        "token": token_id,
                        "name": name,
                    },
                )
        done += len(rows)
        if len(rows) < RESEAL_BATCH:
            return done
