"""Map tasks as the API shows them: a map task's counts, and its instances one page at a time.

A job's view carries a map task's ``map`` (counts by status, never its instances), so a
job with a 10,000-item map answers as small as one without; ``GET
/v1/jobs/{id}/tasks/{task}/instances`` pages through the instances, in item order.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from wire.codec import AnyJson, Timestamp, Uuid
from wire.statuses import TaskStatus

__all__ = ["Instance", "InstancePage", "MapState"]


class MapState(msgspec.Struct, kw_only=True):
    """A map task's fan-out, and where its instances are."""

    over: Annotated[
        str | None, msgspec.Meta(description="The upstream task whose output is the list.")
    ]
    over_items: Annotated[
        int | None, msgspec.Meta(description="How many items the body gave (over_items).")
    ]
    max_parallel: Annotated[
        int | None, msgspec.Meta(description="Instances queued or running at once; null: no cap.")
    ]
    instances: Annotated[
        int, msgspec.Meta(description="Instances made; 0 until the map task is ready.")
    ]
    counts: Annotated[
        dict[str, int], msgspec.Meta(description="Instances by status (only non-zero counts).")
    ]


class Instance(msgspec.Struct, kw_only=True):
    """One instance of a map task: a task of its own (GET it by id for its attempts)."""

    index: Annotated[int, msgspec.Meta(ge=0)]
    id: Uuid
    name: Annotated[str, msgspec.Meta(description="<map task>[<index>].")]
    status: TaskStatus
    item: AnyJson
    attempt_count: int
    retry_at: Timestamp | None
    output: Annotated[
        AnyJson,
        msgspec.Meta(description="Up to the job view's output bound (see output_bytes)."),
    ]
    output_bytes: int | None
    error: str | None
    started_at: Timestamp | None
    finished_at: Timestamp | None


class InstancePage(msgspec.Struct, kw_only=True):
    """A page of a map task's instances, in item order."""

    instances: list[Instance]
    next_cursor: Annotated[
        str | None,
        msgspec.Meta(description="Pass as ?cursor= for the next page; null on the last."),
    ]
