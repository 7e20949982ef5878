"""The Docker API guard's HTTP proxy: one request per connection, checked, then relayed.

Each connection the runner opens carries one request: its head and body are read (a body
at most ``MAX_BODY`` bytes, with a Content-Length: the Docker SDK sends nothing else), the
request is sorted by ``guard.policy`` and either refused (403, the reason in the engine's
own error shape, ``{"message": ...}``, so the SDK raises it as an ``APIError``) or sent to
the engine on a connection of its own with ``Connection: close``. The answer is relayed as
it arrives, never buffered (a container's wait and a pull's progress stream for as long as
they last), and the connection closes after it: a second request on it can never slip past
the checks. An attach is the one exception: after the engine's ``101`` both directions are
piped raw until either side closes, as the engine hijacks that connection itself.

A container operation first asks the engine who the container is (``GET
/containers/<id>/json``), on every call: nothing is cached, so a name or id cannot come to
mean another container between the check and the call, and the call is sent for the full
id the check saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from guard import policy

__all__ = ["MAX_BODY", "Guard"]

log = logging.getLogger(__name__)

# The largest request body read: a create body is some 15 KB (the seccomp profile).
MAX_BODY = 1024 * 1024
MAX_HEAD = 64 * 1024
CHUNK = 64 * 1024
# Headers that describe one hop, not the request: the guard sets its own.
_HOP = {"connection", "keep-alive", "upgrade", "transfer-encoding", "content-length", "te"}


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    query: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


class _Answer(Exception):
    """Ends a request with the guard's own answer (a refusal, a malformed request)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Guard:
    """Serves the runner's Docker API on a unix socket, forwarding to ``upstream``."""

    def __init__(
        self,
        profile: policy.Profile,
        upstream: str,
        *,
        resolve: Callable[[str], str] = os.path.realpath,
    ) -> None:
        self.profile = profile
        self.upstream = upstream.removeprefix("unix://")
        self.resolve = resolve
        self.refused = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def serve(self, path: str) -> asyncio.Server:
        """Listen on ``path`` (a stale socket there is replaced), for its owner only."""
        _clear(Path(path))
        server = await asyncio.start_unix_server(self._handle, path, limit=MAX_HEAD)
        os.chmod(path, 0o600)
        self._server = server
        return server

    async def close(self) -> None:
        """Stop listening and cut every connection under way (a task's wait, an attach)."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            try:
                request = await _read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            try:
                await self._serve(request, reader, writer)
            except _Answer as answer:
                if answer.status == 403:
                    self.refused += 1
                    log.warning(
                        "refused %s %s: %s",
                        request.method,
                        policy.unversioned(request.path),
                        answer.message,
                    )
                await _answer(writer, answer.status, f"homerun guard: {answer.message}")
        except _Answer as answer:
            await _answer(writer, answer.status, f"homerun guard: {answer.message}")
        except ConnectionError:
            pass
        finally:
            self._connections.discard(task)
            await _closed(writer)

    async def _serve(
        self, request: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        _check_path(request.path)
        try:
            policy.check_api_version(request.path)
            route = policy.route(request.method, request.path, request.query)
            path, query, body = request.path, request.query, request.body
            if body and route.kind is not policy.Kind.CREATE:
                # The runner sends a body with a create only; a start's body, say, would be
                # a new HostConfig to an old engine API.
                raise policy.Refused(f"{request.method} {policy.unversioned(path)} takes no body")
            if route.kind is policy.Kind.CREATE:
                try:
                    parsed = json.loads(body or b"null")
                except ValueError:
                    raise _Answer(400, "the create body is not JSON") from None
                if not isinstance(parsed, dict):
                    raise _Answer(400, "the create body is not a JSON object")
                policy.check_create(parsed, self.profile, self.resolve)
                checked = policy.sanitized(parsed)
                policy.check_create(checked, self.profile, self.resolve)
                # What was checked is what is sent, rebuilt from the profile's keys only:
                # no twin of a key in another case, nor a key no check read, reaches the
                # engine (whose JSON decoder ignores case, the last twin winning).
                body = json.dumps(checked).encode()
            elif route.kind is policy.Kind.LIST:
                query = policy.list_query(query, self.profile)
            elif route.kind is policy.Kind.CONTAINER:
                owned = await self._owned_path(request, route)
                if owned is None:
                    raise _Answer(404, f"No such container: {route.container}")
                path = owned
        except policy.Refused as refused:
            raise _Answer(403, refused.reason) from None
        await self._forward(request, path, query, body, reader, writer, upgrade=route.upgrade)

    async def _owned_path(self, request: _Request, route: policy.Route) -> str | None:
        """The request's path for the full id of its container, once it is ours; None if
        the engine has no such container."""
        version = request.path[: len(request.path) - len(policy.unversioned(request.path))]
        status, body = await self._ask(f"{version}/containers/{route.container}/json")
        if status == 404:
            return None
        if status != 200:
            raise _Answer(502, f"the engine answered {status} to inspecting {route.container}")
        inspected = json.loads(body)
        full_id = policy.check_owned(inspected, self.profile)
        if route.action == "start":
            # A bind source may have been swapped for a link since the create.
            policy.check_mounts(
                (inspected.get("HostConfig") or {}).get("Mounts") or [],
                self.profile,
                self.resolve,
            )
        suffix = f"/{route.action}" if route.action else ""
        return f"{version}/containers/{full_id}{suffix}"

    async def _ask(self, path: str) -> tuple[int, bytes]:
        """GET ``path`` from the engine: (status, body)."""
        up_reader, up_writer = await self._connect()
        try:
            up_writer.write(
                f"GET {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n".encode()
            )
            await up_writer.drain()
            head = await up_reader.readuntil(b"\r\n\r\n")
            status, headers = _parse_response_head(head)
            if headers.get("transfer-encoding", "").lower() == "chunked":
                return status, await _read_chunked(up_reader)
            if "content-length" in headers:
                return status, await up_reader.readexactly(int(headers["content-length"]))
            return status, await up_reader.read()
        finally:
            await _closed(up_writer)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.open_unix_connection(self.upstream, limit=MAX_HEAD)
        except OSError as exc:
            raise _Answer(502, f"the Docker engine cannot be reached: {exc}") from None

    async def _forward(
        self,
        request: _Request,
        path: str,
        query: str,
        body: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        upgrade: bool,
    ) -> None:
        up_reader, up_writer = await self._connect()
        try:
            target = f"{path}?{query}" if query else path
            lines = [f"{request.method} {target} {request.version}"]
            lines += [f"{k}: {v}" for k, v in request.headers if k.lower() not in _HOP]
            if body or request.method in {"POST", "PUT"}:
                lines.append(f"Content-Length: {len(body)}")
            lines += ["Connection: Upgrade", "Upgrade: tcp"] if upgrade else ["Connection: close"]
            up_writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            await up_writer.drain()
            head = await up_reader.readuntil(b"\r\n\r\n")
            status, headers = _parse_response_head(head)
            if status == 101 and upgrade:
                writer.write(head)
                await writer.drain()
                await _pipe_both(reader, writer, up_reader, up_writer)
                return
            writer.write(_closing_head(head))
            await writer.drain()
            if upgrade and "content-length" in headers:
                # The engine may keep an upgrade request's connection open after an error.
                await _copy(up_reader, writer, limit=int(headers["content-length"]))
            else:
                await _copy(up_reader, writer)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            log.warning("the engine's answer to %s %s broke off", request.method, path)
        finally:
            await _closed(up_writer)


# Control characters but horizontal tab (allowed inside a header value).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _clear(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _check_path(path: str) -> None:
    """Refuse a path whose meaning the engine's router would change by cleaning it."""
    decoded = unquote(path)
    if any(part in {".", ".."} for part in decoded.split("/")) or "%2f" in path.lower():
        raise _Answer(403, f"path {path!r} has dot segments or an encoded slash")


async def _read_request(reader: asyncio.StreamReader) -> _Request:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise _Answer(431, "request head too large") from None
    lines = head.decode("latin-1").split("\r\n")
    # A bare LF or another control character would be a line break to the engine's parser:
    # a header (or a second request) the guard never read.
    if any(_CONTROL.search(line) for line in lines):
        raise _Answer(400, "control characters in the request head")
    try:
        method, target, version = lines[0].split(" ")
    except ValueError:
        raise _Answer(400, "malformed request line") from None
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise _Answer(400, "malformed header line")
        headers.append((key.strip(), value.strip()))
    names = {key.lower(): value for key, value in headers}
    if "transfer-encoding" in names:
        raise _Answer(411, "a request body needs a Content-Length")
    raw_length = names.get("content-length", "0") or "0"
    if not raw_length.isdigit():
        raise _Answer(400, f"Content-Length {raw_length!r} is not a length")
    length = int(raw_length)
    if length > MAX_BODY:
        raise _Answer(413, f"request body over {MAX_BODY} bytes")
    body = await reader.readexactly(length) if length else b""
    path, _, query = target.partition("?")
    return _Request(method, path, query, version, headers, body)


def _parse_response_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        key, sep, value = line.partition(":")
        if sep:
            headers[key.strip().lower()] = value.strip()
    return status, headers


def _closing_head(head: bytes) -> bytes:
    """The engine's response head with ``Connection: close`` as its only hop header."""
    lines = head.decode("latin-1").split("\r\n")
    kept = [lines[0]] + [
        line
        for line in lines[1:]
        if line and line.partition(":")[0].strip().lower() not in {"connection", "keep-alive"}
    ]
    return ("\r\n".join([*kept, "Connection: close"]) + "\r\n\r\n").encode("latin-1")


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


async def _copy(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limit: int | None = None
) -> None:
    """Relay bytes as they come (``limit`` of them, or to the end), never more than a chunk
    held at once."""
    left = limit
    while left is None or left > 0:
        data = await reader.read(CHUNK if left is None else min(CHUNK, left))
        if not data:
            return
        if left is not None:
            left -= len(data)
        writer.write(data)
        await writer.drain()


async def _pipe_both(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    """A hijacked connection: both ways, until either side ends."""

    async def one_way(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await _copy(src, dst)

    ways: list[asyncio.Future[None]] = [
        asyncio.ensure_future(one_way(up_reader, client_writer)),
        asyncio.ensure_future(one_way(client_reader, up_writer)),
    ]
    _, pending = await asyncio.wait(ways, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


async def _closed(writer: asyncio.StreamWriter) -> None:
    """Close a connection and wait until its socket is released."""
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()


async def _answer(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    body = json.dumps({"message": message}).encode()
    reason = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 411: "Length Required"}
    head = (
        f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    with contextlib.suppress(ConnectionError):
        writer.write(head.encode() + body)
        await writer.drain()
