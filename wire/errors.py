"""The one error shape: ``{"error": {"code", "message", "details": [{"loc", "msg"}]}}``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import msgspec

__all__ = ["Error", "ErrorBody", "ErrorDetail"]


class ErrorDetail(msgspec.Struct, frozen=True):
    """One problem, and where it is."""

    loc: Annotated[
        Sequence[str | int],
        msgspec.Meta(
            description='Path to the offending input, e.g. ["body", "tasks", 0, "payload",'
            ' "script"].'
        ),
    ]
    msg: str


class ErrorBody(msgspec.Struct, kw_only=True):
    code: Annotated[str, msgspec.Meta(description="Stable, machine-readable.")]
    message: Annotated[str, msgspec.Meta(description="For people.")]
    details: list[ErrorDetail]


class Error(msgspec.Struct, kw_only=True):
    """Every error answer."""

    error: ErrorBody
