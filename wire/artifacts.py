"""Artifacts: the files a task left under /homerun/artifacts, and what was refused there."""

from __future__ import annotations

from typing import Annotated

import msgspec

from wire.codec import Timestamp, Uuid

__all__ = ["Artifact", "ArtifactList", "RefusedArtifact"]


class Artifact(msgspec.Struct, kw_only=True):
    """One collected file; GET .../artifacts/{path} streams it."""

    path: Annotated[str, msgspec.Meta(description="Its path under /homerun/artifacts.")]
    size: Annotated[int, msgspec.Meta(ge=0, description="Bytes.")]
    sha256: Annotated[str, msgspec.Meta(description="Hex digest of exactly the stored bytes.")]
    content_type: Annotated[str, msgspec.Meta(description="Guessed from the name.")]
    created_at: Timestamp


class RefusedArtifact(msgspec.Struct, kw_only=True):
    """An entry that was never collected: a symlink, FIFO, device, hard link out of the tree."""

    path: str
    reason: str


class ArtifactList(msgspec.Struct, kw_only=True):
    """A task's artifacts (of its latest attempt that left any), by path."""

    task_id: Uuid
    artifacts: list[Artifact]
    refused: list[RefusedArtifact]
