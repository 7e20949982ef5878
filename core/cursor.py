"""Opaque pagination cursors: the (created_at, id) of the last job on a page."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime

__all__ = ["decode_cursor", "encode_cursor"]


def encode_cursor(created_at: datetime, job_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), str(job_id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Raise ``ValueError`` for anything that is not a cursor this API handed out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, job_id = json.loads(raw)
        when = datetime.fromisoformat(created)
        uuid.UUID(job_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a valid cursor ({type(exc).__name__})") from None
    if when.tzinfo is None:
        raise ValueError("not a valid cursor (timestamp without zone)")
    return when, str(job_id)
