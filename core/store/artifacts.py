"""The ``artifacts`` and ``artifact_chunks`` tables: a task's files, in fixed-size chunks.

Written by the runner once an attempt's files are collected (``runners/artifacts.py``),
read by the API (list, ranged download) and by the runner again for a downstream task's
inputs; copied to a re-run's task that took over a succeeded one (``copy_reused``); removed
with their job by ``ON DELETE CASCADE`` (retention). A task holds the files of one attempt:
saving an attempt's replaces whatever an earlier attempt left.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

from databases import Database
from databases.core import Connection
from databases.interfaces import Record

from core.consistency import Reads
from core.db import Row

__all__ = [
    "CHUNK_BYTES",
    "FetchAll",
    "MissingChunks",
    "Stored",
    "StoredFile",
    "chunks",
    "copy_reused",
    "find",
    "for_task",
    "save",
    "upstream",
]

# One row per 256 KiB: a Range request reads at most one chunk more than it returns, and a
# 50 MB file is 200 rows.
CHUNK_BYTES = 256 * 1024
# Chunks fetched per round trip while streaming a file: 4 MiB held at a time.
_CHUNKS_PER_READ = 16


@dataclass(frozen=True)
class StoredFile:
    """A regular file to save: its path under the artifacts tree and how to open it."""

    path: str
    content_type: str
    open: Callable[[], BinaryIO]


@dataclass(frozen=True)
class Stored:
    """One artifact row as read back."""

    id: str
    task_id: str
    path: str
    size: int
    sha256: str | None
    content_type: str
    chunk_bytes: int
    refused: str | None
    created_at: datetime


_COLUMNS = (
    "a.id, a.task_id, a.path, a.size, a.sha256, a.content_type, a.chunk_bytes, a.refused,"
    " a.created_at"
)


def _stored(row: Row | Record) -> Stored:
    return Stored(
        id=str(row["id"]),
        task_id=str(row["task_id"]),
        path=row["path"],
        size=int(row["size"]),
        sha256=row["sha256"],
        content_type=row["content_type"],
        chunk_bytes=int(row["chunk_bytes"]),
        refused=row["refused"],
        created_at=row["created_at"],
    )


async def save(
    db: Database,
    task_id: str,
    attempt: int,
    files: Iterable[StoredFile],
    refused: Iterable[tuple[str, str]],
) -> bool:
    """Replace the task's artifacts with ``files`` (read a chunk at a time) and ``refused``
    (path, reason); one transaction. False, and nothing written, when ``attempt`` is no
    longer the task's latest (fencing: a newer attempt owns the task).

    A file is hashed as it is read, so the sha256 is of exactly the bytes stored.
    """
    async with db.connection() as conn, conn.transaction():
        latest = await conn.fetch_val(
            "SELECT attempts FROM tasks WHERE id = :id FOR SHARE", {"id": task_id}
        )
        if latest != attempt:
            return False
        await conn.execute("DELETE FROM artifacts WHERE task_id = :id", {"id": task_id})
        for path, reason in refused:
            await conn.execute(
                "INSERT INTO artifacts (id, task_id, attempt, path, chunk_bytes, refused)"
                " VALUES (:id, :task, :attempt, :path, :chunk, :reason)",
                {
                    "id": str(uuid.uuid4()),
                    "task": task_id,
                    "attempt": attempt,
                    "path": path,
                    "chunk": CHUNK_BYTES,
                    "reason": reason,
                },
            )
        for file in files:
            await _save_file(conn, task_id, attempt, file)
    return True


async def _save_file(conn: Connection, task_id: str, attempt: int, file: StoredFile) -> None:
    artifact_id = str(uuid.uuid4())
    await conn.execute(
        "INSERT INTO artifacts (id, task_id, attempt, path, content_type, chunk_bytes)"
        " VALUES (:id, :task, :attempt, :path, :type, :chunk)",
        {
            "id": artifact_id,
            "task": task_id,
            "attempt": attempt,
            "path": file.path,
            "type": file.content_type,
            "chunk": CHUNK_BYTES,
        },
    )
    digest = hashlib.sha256()
    size = 0
    with file.open() as f:
        seq = 0
        while data := f.read(CHUNK_BYTES):
            digest.update(data)
            size += len(data)
            await conn.execute(
                "INSERT INTO artifact_chunks (artifact_id, seq, data) VALUES (:id, :seq, :data)",
                {"id": artifact_id, "seq": seq, "data": data},
            )
            seq += 1
    await conn.execute(
        "UPDATE artifacts SET size = :size, sha256 = :sha WHERE id = :id",
        {"id": artifact_id, "size": size, "sha": digest.hexdigest()},
    )


async def for_task(reads: Reads, token_id: str, job_id: str, task_id: str) -> list[Stored] | None:
    """The task's artifacts by path; None when the token has no such task in that job."""
    rows = await reads.all(
        token_id,
        f"SELECT {_COLUMNS}, t.id AS owner FROM tasks t JOIN jobs j ON j.id = t.job_id"
        " LEFT JOIN artifacts a ON a.task_id = t.id"
        " WHERE t.id = :task AND j.id = :job AND j.token_id = :token ORDER BY a.path",
        {"task": task_id, "job": job_id, "token": token_id},
    )
    if not rows:
        return None
    return [_stored(row) for row in rows if row["id"] is not None]


async def find(reads: Reads, token_id: str, job_id: str, task_id: str, path: str) -> Stored | None:
    """One collected (not refused) artifact of the token's task, or None."""
    row = await reads.one(
        token_id,
        f"SELECT {_COLUMNS} FROM artifacts a JOIN tasks t ON t.id = a.task_id"
        " JOIN jobs j ON j.id = t.job_id WHERE a.task_id = :task AND a.path = :path"
        " AND a.refused IS NULL AND j.id = :job AND j.token_id = :token",
        {"task": task_id, "job": job_id, "token": token_id, "path": path},
    )
    return None if row is None else _stored(row)


# A query to the right database: (sql, values) -> rows (a replica, the primary, the runner's).
FetchAll = Callable[[str, Mapping[str, Any]], Awaitable[Sequence[Any]]]

_CHUNKS = (
    "SELECT seq, data FROM artifact_chunks WHERE artifact_id = :id"
    " AND seq BETWEEN :a AND :b ORDER BY seq"
)


async def chunks(
    fetch_all: FetchAll, artifact: Stored, start: int, end: int
) -> AsyncIterator[bytes]:
    """The bytes ``start`` to ``end`` (inclusive) of ``artifact``, a few chunks per query.

    Raises ``MissingChunks`` when a query answers fewer chunks than it covers (a replica
    behind the primary): the caller asks the primary.
    """
    size = artifact.chunk_bytes
    first, last = start // size, end // size
    seq = first
    while seq <= last:
        upto = min(last, seq + _CHUNKS_PER_READ - 1)
        rows = await fetch_all(_CHUNKS, {"id": artifact.id, "a": seq, "b": upto})
        if len(rows) != upto - seq + 1:
            raise MissingChunks(f"artifact {artifact.id}: chunks {seq}..{upto} not all there")
        for row in rows:
            data = bytes(row["data"])
            offset = int(row["seq"]) * size
            lo = max(start - offset, 0)
            hi = min(end - offset + 1, len(data))
            yield data[lo:hi]
        seq = upto + 1


class MissingChunks(Exception):
    """Fewer chunks than the artifact's size needs (read from a lagging replica)."""


async def upstream(db: Database, task_id: str) -> list[tuple[str, Stored]]:
    """(where, artifact) of every collected artifact of the task's dependencies: what the
    runner places under /homerun/inputs/<where>/. ``where`` is the upstream task's name, or
    for a map task's instance ``<map task>/<index>``."""
    rows = await db.fetch_all(
        "SELECT CASE WHEN u.map_parent IS NULL THEN u.name"
        f" ELSE m.name || '/' || u.map_index END AS upstream, {_COLUMNS}"
        " FROM task_dependencies d JOIN tasks m ON m.id = d.depends_on"
        " JOIN tasks u ON u.id = m.id OR u.map_parent = m.id"
        " JOIN artifacts a ON a.task_id = u.id"
        # A map instance sees its map task's upstream artifacts (as it sees their outputs).
        " WHERE d.task_id = COALESCE((SELECT s.map_parent FROM tasks s WHERE s.id = :id), :id)"
        " AND a.refused IS NULL ORDER BY 1, a.path",
        {"id": task_id},
    )
    return [(row["upstream"], _stored(row)) for row in rows]


async def copy_reused(conn: Connection, job_id: str) -> None:
    """Give each task of the job that a re-run took over (``reused_from``) a copy of its
    original's artifacts, so that they outlive the original job's retention."""
    await conn.execute(
        "INSERT INTO artifacts (id, task_id, attempt, path, size, sha256, content_type,"
        " chunk_bytes, refused) SELECT gen_random_uuid(), t.id, 0, a.path, a.size, a.sha256,"
        " a.content_type, a.chunk_bytes, a.refused FROM tasks t"
        " JOIN artifacts a ON a.task_id = t.reused_from WHERE t.job_id = :job",
        {"job": job_id},
    )
    await conn.execute(
        "INSERT INTO artifact_chunks (artifact_id, seq, data) SELECT n.id, k.seq, k.data"
        " FROM tasks t JOIN artifacts o ON o.task_id = t.reused_from"
        " JOIN artifacts n ON n.task_id = t.id AND n.path = o.path"
        " JOIN artifact_chunks k ON k.artifact_id = o.id WHERE t.job_id = :job",
        {"job": job_id},
    )
