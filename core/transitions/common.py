"""Small helpers shared by the transitions."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from databases.core import Connection

from core.models import JSON

# Events carry a summary of a task's output; the whole output lives in the tasks row.
OUTPUT_SUMMARY_CHARS = 512


def now() -> datetime:
    return datetime.now(UTC)


def output_summary(output: JSON) -> JSON:
    if output is None:
        return None
    text = json.dumps(output)
    return output if len(text) <= OUTPUT_SUMMARY_CHARS else text[:OUTPUT_SUMMARY_CHARS] + "…"


async def lock_job_of_task(conn: Connection, task_id: str) -> None:
    """Take the job row's lock first: the one lock order every transition follows."""
    await conn.execute(
        "SELECT 1 FROM jobs WHERE id = (SELECT job_id FROM tasks WHERE id = :id) FOR UPDATE",
        {"id": task_id},
    )
