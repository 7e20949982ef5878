"""Secrets: a token's named values for its tasks; names and times only, never a value."""

from __future__ import annotations

import msgspec

from wire.codec import Timestamp

__all__ = ["SecretInfo", "SecretList"]


class SecretInfo(msgspec.Struct, kw_only=True):
    """A secret as the API shows it: its value is never answered, by any endpoint."""

    name: str
    # The keyring key that seals the value (docs/operations.md, "Rotating the secrets key").
    key_id: str
    created_at: Timestamp
    updated_at: Timestamp


class SecretList(msgspec.Struct, kw_only=True):
    secrets: list[SecretInfo]
