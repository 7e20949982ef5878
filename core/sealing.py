"""Sealing secret values at rest: AES-256-GCM from ``cryptography``, under a keyring.

The keyring is a Swarm secret (``HOMERUN_SECRETS_KEYRING_FILE``): one key per line,
``<key id> <base64 of 32 random bytes>``; ``#`` comments and blank lines are ignored and
the *last* key is the current one. Every row records the id of the key that sealed it, so a
rotation is "append a key": new writes use it, old rows still open with theirs, and
``homerun rekey-secrets`` (``core.store.secrets.reseal_all``) re-seals them under the
current key, after which the old line can go.

The associated data is the row's identity (token id, name): the tag then fails for a
ciphertext moved to another token or name, so a database writer cannot swap values
between rows without the key. A fresh 96-bit random nonce per seal; AES-GCM's bound of
2^32 seals per key is far beyond what one deployment writes before rotating.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets as random
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "KEY_ID_PATTERN",
    "Keyring",
    "KeyringError",
    "Sealed",
    "TamperedSecret",
    "UnknownKey",
    "generate_line",
]

KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
KEY_BYTES = 32
NONCE_BYTES = 12


class KeyringError(ValueError):
    """The keyring text is malformed; the message says which line and why."""


class UnknownKey(LookupError):
    """A row was sealed under a key the keyring no longer holds."""


@dataclass(frozen=True)
class Sealed:
    key_id: str
    nonce: bytes
    ciphertext: bytes  # with GCM's 16-byte tag at the end


def _aad(token_id: str, name: str) -> bytes:
    return b"homerun-secret\x00" + token_id.encode() + b"\x00" + name.encode()


def generate_line(key_id: str) -> str:
    """A new keyring line: ``key_id`` and 32 fresh random bytes."""
    if not KEY_ID_PATTERN.match(key_id):
        raise KeyringError(f"key id {key_id!r}: 1-32 letters, digits, '_', '.' or '-'")
    return f"{key_id} {base64.b64encode(random.token_bytes(KEY_BYTES)).decode()}"


class Keyring:
    """The keys that seal and open secret values; ``current`` seals."""

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if current not in keys:
            raise KeyringError(f"the current key {current!r} is not in the keyring")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.current = current

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._ciphers)

    @classmethod
    def parse(cls, text: str) -> Keyring:
        keys: dict[str, bytes] = {}
        current = None
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 2:
                raise KeyringError(f"keyring line {number}: expected '<key id> <base64 key>'")
            key_id, encoded = parts
            if not KEY_ID_PATTERN.match(key_id):
                raise KeyringError(
                    f"keyring line {number}: key id must be 1-32 letters, digits, '_', '.'"
                    " or '-', starting with a letter or digit"
                )
            if key_id in keys:
                raise KeyringError(f"keyring line {number}: key id {key_id!r} appears twice")
            try:
                key = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                raise KeyringError(f"keyring line {number}: the key is not base64") from None
            if len(key) != KEY_BYTES:
                raise KeyringError(
                    f"keyring line {number}: the key is {len(key)} bytes, not {KEY_BYTES}"
                )
            keys[key_id] = key
            current = key_id
        if current is None:
            raise KeyringError("the keyring holds no key")
        return cls(keys, current)

    def seal(self, token_id: str, name: str, value: bytes) -> Sealed:
        nonce = os.urandom(NONCE_BYTES)
        cipher = self._ciphers[self.current]
        return Sealed(self.current, nonce, cipher.encrypt(nonce, value, _aad(token_id, name)))

    def open(self, token_id: str, name: str, sealed: Sealed) -> bytes:
        """The value; ``UnknownKey`` for a retired key, ``InvalidTag`` for a tampered row."""
        cipher = self._ciphers.get(sealed.key_id)
        if cipher is None:
            raise UnknownKey(
                f"secret {name!r} is sealed under key {sealed.key_id!r}, which the keyring"
                f" does not hold (it holds {', '.join(self._ciphers)})"
            )
        return cipher.decrypt(sealed.nonce, sealed.ciphertext, _aad(token_id, name))


# Re-exported so callers need not import cryptography to catch a tampered row.
TamperedSecret = InvalidTag
