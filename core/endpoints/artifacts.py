"""/v1/jobs/{id}/tasks/{task}/artifacts: a task's files, listed and streamed (Range).

A download reads only the chunks its range covers (``core/store/artifacts.py``), from the
replica with the primary as fallback, a few chunks at a time: a 50 MB file costs the API a
few MiB of memory however many ask for it. One range per request (a multi-range request is
answered whole, which RFC 9110 allows); an unsatisfiable one is a 416 naming the size.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from core.auth import require_token
from core.consistency import Reads
from core.errors import ApiError, Detail
from core.openapi import Document
from core.responses import ModelResponse
from core.state import get_state
from core.store import artifacts as store
from wire import Artifact, ArtifactList, RefusedArtifact

__all__ = ["openapi_paths", "parse_range", "routes"]

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class Unsatisfiable(Exception):
    """A well-formed range that starts past the end of the file."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single ``bytes=`` range, or None to answer the whole file.

    A malformed or multi-range header is ignored (the whole file, as RFC 9110 allows);
    ``Unsatisfiable`` for one no byte of the file meets.
    """
    if header is None:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    if not first:  # the last N bytes
        n = int(last)
        if n == 0:
            raise Unsatisfiable
        return max(size - n, 0), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # malformed: ignored
    if start >= size:
        raise Unsatisfiable
    end = int(last) if last else size - 1
    return start, min(end, size - 1)


def _not_found(task_id: uuid.UUID, job_id: uuid.UUID, path: str | None = None) -> ApiError:
    if path is None:
        return ApiError(
            404,
            "not_found",
            f"no task {task_id} in job {job_id}",
            [Detail(["path", "task_id"], "no such task")],
        )
    return ApiError(
        404,
        "not_found",
        f"task {task_id} has no artifact {path!r}",
        [Detail(["path", "path"], "no such artifact")],
    )


async def list_artifacts(request: Request) -> Response:
    principal = await require_token(request)
    job_id: uuid.UUID = request.path_params["job_id"]
    task_id: uuid.UUID = request.path_params["task_id"]
    rows = await store.for_task(get_state(request).reads, principal.id, str(job_id), str(task_id))
    if rows is None:
        raise _not_found(task_id, job_id)
    return ModelResponse(
        ArtifactList(
            task_id=str(task_id),
            artifacts=[
                Artifact(
                    path=r.path,
                    size=r.size,
                    sha256=r.sha256 or "",
                    content_type=r.content_type,
                    created_at=r.created_at,
                )
                for r in rows
                if r.refused is None
            ],
            refused=[
                RefusedArtifact(path=r.path, reason=r.refused)
                for r in rows
                if r.refused is not None
            ],
        )
    )


def _fetch(reads: Reads, token_id: str, primary: bool) -> store.FetchAll:
    async def fetch(query: str, values: Mapping[str, Any]) -> Sequence[Any]:
        pinned = primary or await reads.pinned(token_id)
        return await reads.db.read_all(query, values, primary=pinned)

    return fetch


async def get_artifact(request: Request) -> Response:
    principal = await require_token(request)
    job_id: uuid.UUID = request.path_params["job_id"]
    task_id: uuid.UUID = request.path_params["task_id"]
    path: str = request.path_params["path"]
    reads = get_state(request).reads
    found = await store.find(reads, principal.id, str(job_id), str(task_id), path)
    if found is None:
        raise _not_found(task_id, job_id, path)
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Disposition": _disposition(path),
        "ETag": f'"{found.sha256}"',
        "X-Content-Type-Options": "nosniff",
        # A task's bytes, never rendered as the API's origin (an HTML artifact opened in a
        # browser that ignores the attachment gets no script and no origin of its own).
        "Content-Security-Policy": "sandbox",
    }
    try:
        wanted = parse_range(request.headers.get("range"), found.size)
    except Unsatisfiable:
        raise ApiError(
            416,
            "range_not_satisfiable",
            f"the range starts past the end of the file ({found.size} bytes)",
            [Detail(["header", "range"], f"the file has {found.size} bytes")],
            headers={"Content-Range": f"bytes */{found.size}"},
        ) from None
    if found.size == 0:
        return Response(b"", media_type=found.content_type, headers=headers)
    start, end = wanted if wanted is not None else (0, found.size - 1)
    status = 206 if wanted is not None else 200
    if wanted is not None:
        headers["Content-Range"] = f"bytes {start}-{end}/{found.size}"
    headers["Content-Length"] = str(end - start + 1)
    # The first chunks are read before the answer starts: a replica behind the primary
    # (MissingChunks) is asked again of the primary instead of cutting the body short. One
    # transaction wrote every chunk, so a replica has all of them or none; one the primary
    # lacks too was replaced (a later attempt's save) or removed since it was found.
    body = store.chunks(_fetch(reads, principal.id, primary=False), found, start, end)
    try:
        first = await anext(body)
    except store.MissingChunks:
        body = store.chunks(_fetch(reads, principal.id, primary=True), found, start, end)
        try:
            first = await anext(body)
        except store.MissingChunks:
            raise _not_found(task_id, job_id, path) from None

    async def stream() -> AsyncIterator[bytes]:
        yield first
        async for data in body:
            yield data

    return StreamingResponse(
        stream(), status_code=status, media_type=found.content_type, headers=headers
    )


def _disposition(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    ascii_name = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


routes: Iterable[BaseRoute] = [
    Route(
        "/v1/jobs/{job_id:uuid}/tasks/{task_id:uuid}/artifacts",
        list_artifacts,
        methods=["GET"],
        name="list_artifacts",
    ),
    Route(
        "/v1/jobs/{job_id:uuid}/tasks/{task_id:uuid}/artifacts/{path:path}",
        get_artifact,
        methods=["GET"],
        name="get_artifact",
    ),
]


def openapi_paths(doc: Document) -> dict[str, Any]:
    return {
        "/v1/jobs/{job_id}/tasks/{task_id}/artifacts": {
            "get": {
                "operationId": "listArtifacts",
                "summary": "A task's artifacts: path, size, sha256, content type",
                "description": "The files the task's latest attempt that left any wrote under"
                " /homerun/artifacts, and the entries refused there (symlinks, FIFOs, devices,"
                " hard links out of the tree), which were never read.",
                "security": [{"bearer": []}],
                "parameters": [doc.path_id("job_id"), doc.path_id("task_id")],
                "responses": {
                    "200": doc.ok("The task's artifacts.", ArtifactList),
                    **doc.authed(),
                    "404": doc.error("No such job or task for this token."),
                },
            }
        },
        "/v1/jobs/{job_id}/tasks/{task_id}/artifacts/{path}": {
            "get": {
                "operationId": "getArtifact",
                "summary": "One artifact's bytes (Range requests)",
                "description": "A single bytes= range is answered 206 with Content-Range;"
                " one past the end is 416 (Content-Range: bytes */size); otherwise 200 with"
                " the whole file. Content-Disposition: attachment.",
                "security": [{"bearer": []}],
                "parameters": [
                    doc.path_id("job_id"),
                    doc.path_id("task_id"),
                    {
                        "name": "path",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                        "description": "The artifact's path, as listed (may contain '/').",
                    },
                    {
                        "name": "Range",
                        "in": "header",
                        "schema": {"type": "string"},
                        "description": "bytes=first-last, bytes=first- or bytes=-suffix.",
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The whole file.",
                        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    "206": {
                        "description": "The range asked for.",
                        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    "416": doc.error("The range starts past the end of the file."),
                    **doc.authed(),
                    "404": doc.error("No such job, task or artifact for this token."),
                },
            }
        },
    }
