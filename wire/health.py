"""The unauthenticated operator surface: liveness and readiness."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from wire.errors import ErrorBody

__all__ = ["Health", "Probe", "Readiness", "ReplicaState"]


class Health(msgspec.Struct, kw_only=True):
    """Alive: the event loop answers."""

    status: Literal["ok"]


class Probe(msgspec.Struct, kw_only=True):
    """Whether a dependency answered; ``error`` only when it did not."""

    up: bool
    error: str | msgspec.UnsetType = msgspec.UNSET


class ReplicaState(msgspec.Struct, kw_only=True):
    configured: bool
    up: bool
    fallbacks: Annotated[
        int,
        msgspec.Meta(ge=0, description="Reads meant for the replica that the primary answered."),
    ]
    primary_fallbacks: Annotated[
        int,
        msgspec.Meta(
            ge=0,
            description="Reads meant for the primary that the replica answered while the"
            " primary was down.",
        ),
    ]


class Readiness(msgspec.Struct, kw_only=True):
    """Ready while the primary answers; the replica and the queue Redis are reported only."""

    status: Literal["ready", "unavailable"]
    primary: Probe
    replica: ReplicaState
    queue_redis: Probe
    error: Annotated[
        ErrorBody | msgspec.UnsetType, msgspec.Meta(description="Present when not ready.")
    ] = msgspec.UNSET
