"""The HTTP client the CLI uses, and the one place the client's configuration is read.

Every answer is decoded into its ``wire`` model (the same models the server answers from),
so a caller gets typed values, and an answer off the contract is an ``ApiError`` naming
what did not fit rather than a ``KeyError`` somewhere later.

Configuration: ``HOMERUN_URL`` and ``HOMERUN_TOKEN`` from the environment, else from the
nearest ``.homerun/env`` file (``KEY=VALUE`` lines) in the working directory or one of its
parents (``make up`` writes that file). The server's settings are ``core.settings``; the
client deliberately shares nothing with them, so the CLI works against a remote API.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote

import httpx

import wire
from homerun import sse

__all__ = ["ApiError", "Client", "ClientConfig", "ConfigError", "load_config"]

ENV_FILE = Path(".homerun") / "env"
URL_VAR = "HOMERUN_URL"
TOKEN_VAR = "HOMERUN_TOKEN"
DEFAULT_URL = "http://127.0.0.1:8000"
TERMINAL_JOB_EVENTS = frozenset(f"job.{s.value}" for s in wire.TERMINAL_JOB)

T = TypeVar("T")


class ConfigError(Exception):
    """The client configuration is missing or malformed."""


@dataclass(frozen=True)
class ClientConfig:
    url: str
    token: str | None
    source: str  # where the values came from, for error messages


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep:
            raise ConfigError(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def find_env_file(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        candidate = folder / ENV_FILE
        if candidate.is_file():
            return candidate
    return None


def load_config(cwd: Path | None = None, env: Mapping[str, str] | None = None) -> ClientConfig:
    """Environment variables win over the ``.homerun/env`` file, key by key."""
    environ = os.environ if env is None else env
    path = find_env_file((cwd or Path.cwd()).resolve())
    file_values = read_env_file(path) if path else {}
    url = environ.get(URL_VAR) or file_values.get(URL_VAR) or DEFAULT_URL
    token = environ.get(TOKEN_VAR) or file_values.get(TOKEN_VAR) or None
    source = f"environment and {path}" if path else "environment"
    return ClientConfig(url=url.rstrip("/"), token=token, source=source)


class ApiError(Exception):
    """The API answered with an error; carries its documented error body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Iterable[wire.ErrorDetail] = (),
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = list(details)
        self.retry_after: float | None = None


def _error(response: httpx.Response) -> ApiError:
    try:
        body = wire.decode(response.content, wire.Error).error
        err = ApiError(response.status_code, body.code, body.message, body.details)
    except wire.DecodeError:
        # Not our error shape: a proxy's page, say. Show what came back.
        err = ApiError(response.status_code, "http_error", response.text[:500])
    raw = response.headers.get("retry-after")
    if raw is not None:
        try:
            err.retry_after = float(raw)
        except ValueError:
            err.retry_after = None
    return err


class Client:
    def __init__(
        self,
        config: ClientConfig,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Accept": "application/json"}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        self.config = config
        self._http = httpx.Client(
            base_url=config.url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, into: type[T], method: str, path: str, **kwargs: Any) -> T:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise _error(response)
        try:
            return wire.decode(response.content, into)
        except wire.DecodeError as exc:
            raise ApiError(
                response.status_code,
                "unexpected_answer",
                f"{method} {path} answered something that is not a {into.__name__}: {exc}",
            ) from None

    # --- jobs
    def submit(self, job: Mapping[str, Any], idempotency_key: str | None = None) -> wire.Job:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._call(wire.Job, "POST", "/v1/jobs", json=dict(job), headers=headers)

    def get_job(self, job_id: str) -> wire.Job:
        return self._call(wire.Job, "GET", f"/v1/jobs/{job_id}")

    def list_jobs(
        self,
        *,
        status: str | Iterable[str] | None = None,
        labels: Mapping[str, str] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        schedule: str | None = None,
    ) -> wire.JobPage:
        """A page of jobs, newest first: any of the statuses, every one of the labels
        (``schedule``: only the jobs that schedule fired)."""
        params: list[tuple[str, str]] = []
        if schedule:
            params.append(("schedule", schedule))
        statuses = [status] if isinstance(status, str) else list(status or ())
        params += [("status", s) for s in statuses]
        # The API's filter is label=key:value (a key cannot hold ':', a value may).
        params += [("label", f"{key}:{value}") for key, value in (labels or {}).items()]
        if limit is not None:
            params.append(("limit", str(limit)))
        if cursor:
            params.append(("cursor", cursor))
        return self._call(wire.JobPage, "GET", "/v1/jobs", params=params)

    def get_task(self, job_id: str, task_id: str) -> wire.TaskDetail:
        return self._call(wire.TaskDetail, "GET", f"/v1/jobs/{job_id}/tasks/{task_id}")

    def get_attempt(self, job_id: str, task_id: str, number: int) -> wire.AttemptDetail:
        return self._call(
            wire.AttemptDetail, "GET", f"/v1/jobs/{job_id}/tasks/{task_id}/attempts/{number}"
        )

    def instances(
        self,
        job_id: str,
        task_id: str,
        *,
        status: str | Iterable[str] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> wire.InstancePage:
        """A page of a map task's instances, in item order (any of the statuses)."""
        statuses = [status] if isinstance(status, str) else list(status or ())
        params: list[tuple[str, str]] = [("status", s) for s in statuses]
        if limit is not None:
            params.append(("limit", str(limit)))
        if cursor:
            params.append(("cursor", cursor))
        return self._call(
            wire.InstancePage,
            "GET",
            f"/v1/jobs/{job_id}/tasks/{task_id}/instances",
            params=params,
        )

    # --- artifacts
    def list_artifacts(self, job_id: str, task_id: str) -> wire.ArtifactList:
        return self._call(wire.ArtifactList, "GET", f"/v1/jobs/{job_id}/tasks/{task_id}/artifacts")

    def download_artifact(
        self,
        job_id: str,
        task_id: str,
        path: str,
        out: BinaryIO,
        *,
        byte_range: str | None = None,
    ) -> str:
        """Stream one artifact (or ``byte_range``, e.g. ``bytes=0-99``) into ``out``; the
        sha256 of what was written."""
        url = f"/v1/jobs/{job_id}/tasks/{task_id}/artifacts/{quote(path, safe='/')}"
        headers = {"Accept": "*/*"}
        if byte_range:
            headers["Range"] = byte_range
        digest = hashlib.sha256()
        with self._http.stream("GET", url, headers=headers) as response:
            if response.status_code >= 400:
                response.read()
                raise _error(response)
            for data in response.iter_bytes():
                digest.update(data)
                out.write(data)
        return digest.hexdigest()

    def rerun(self, job_id: str, *, failed_only: bool = False) -> wire.Job:
        """A new job from ``job_id``'s body; ``failed_only``: only what did not succeed."""
        params = {"from": "failed"} if failed_only else {}
        return self._call(wire.Job, "POST", f"/v1/jobs/{job_id}/rerun", params=params)

    def cancel(self, job_id: str) -> wire.Job:
        return self._call(wire.Job, "POST", f"/v1/jobs/{job_id}/cancel")

    def set_keep(self, job_id: str, keep: bool) -> wire.Job:
        """Keep a job from retention (``keep``), or let it expire again."""
        return self._call(wire.Job, "PATCH", f"/v1/jobs/{job_id}", json={"keep": keep})

    # --- schedules
    def create_schedule(self, schedule: Mapping[str, Any]) -> wire.Schedule:
        """``schedule``: name, cron, job (a ``submit`` body), and optionally timezone,
        overlap, catchup, paused."""
        return self._call(wire.Schedule, "POST", "/v1/schedules", json=dict(schedule))

    def list_schedules(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> wire.SchedulePage:
        params: list[tuple[str, str]] = []
        if limit is not None:
            params.append(("limit", str(limit)))
        if cursor:
            params.append(("cursor", cursor))
        return self._call(wire.SchedulePage, "GET", "/v1/schedules", params=params)

    def get_schedule(self, schedule_id: str) -> wire.Schedule:
        return self._call(wire.Schedule, "GET", f"/v1/schedules/{schedule_id}")

    def update_schedule(self, schedule_id: str, changes: Mapping[str, Any]) -> wire.Schedule:
        return self._call(
            wire.Schedule, "PATCH", f"/v1/schedules/{schedule_id}", json=dict(changes)
        )

    def pause_schedule(self, schedule_id: str) -> wire.Schedule:
        return self._call(wire.Schedule, "POST", f"/v1/schedules/{schedule_id}/pause")

    def resume_schedule(self, schedule_id: str) -> wire.Schedule:
        return self._call(wire.Schedule, "POST", f"/v1/schedules/{schedule_id}/resume")

    def trigger_schedule(self, schedule_id: str) -> wire.Job:
        """A job now from the schedule, recorded as a manual tick."""
        return self._call(wire.Job, "POST", f"/v1/schedules/{schedule_id}/trigger")

    def delete_schedule(self, schedule_id: str) -> None:
        response = self._http.request("DELETE", f"/v1/schedules/{schedule_id}")
        if response.status_code >= 400:
            raise _error(response)

    def task_types(self) -> wire.TaskTypeList:
        return self._call(wire.TaskTypeList, "GET", "/v1/task-types")

    # --- secrets (a value goes up; none ever comes back)
    def put_secret(self, name: str, value: str) -> wire.SecretInfo:
        return self._call(wire.SecretInfo, "PUT", f"/v1/secrets/{name}", json={"value": value})

    def list_secrets(self) -> wire.SecretList:
        return self._call(wire.SecretList, "GET", "/v1/secrets")

    def delete_secret(self, name: str) -> None:
        response = self._http.request("DELETE", f"/v1/secrets/{name}")
        if response.status_code >= 400:
            raise _error(response)

    # --- live events
    def events(
        self, job_id: str, last_event_id: str | None = None
    ) -> Generator[sse.Event, None, None]:
        """One SSE connection to the job's event stream; ends when the server ends it."""
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        timeout = httpx.Timeout(self._http.timeout.connect, read=None)
        with self._http.stream(
            "GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=timeout
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise _error(response)
            yield from sse.parse(sse.lines(response.iter_bytes()), last_event_id)

    def follow(
        self,
        job_id: str,
        *,
        last_event_id: str | None = None,
        give_up_after: float = 300.0,
        on_reconnect: Callable[[str], None] | None = None,
    ) -> Iterator[sse.Event]:
        """Every event of the job, in order, until its terminal event, across reconnects.

        A dropped connection or a 503 (streams Redis down) is retried with ``Last-Event-ID``
        so nothing is missed or repeated; gives up after ``give_up_after`` seconds without
        a successful connection.
        """
        last_id = last_event_id
        failing_since: float | None = None
        while True:
            try:
                for event in self.events(job_id, last_id):
                    failing_since = None
                    if event.id is not None:
                        last_id = event.id
                    yield event
                    if event.event in TERMINAL_JOB_EVENTS:
                        return
                reason, delay = "the server closed the stream", 0.2
            except ApiError as exc:
                if exc.status != 503:
                    raise
                reason, delay = exc.message or "service unavailable", exc.retry_after or 1.0
            except httpx.TransportError as exc:
                reason, delay = f"connection lost ({type(exc).__name__})", 1.0
            now = time.monotonic()
            failing_since = failing_since or now
            if now - failing_since > give_up_after:
                raise ApiError(503, "unavailable", f"gave up following job {job_id}: {reason}")
            if on_reconnect is not None:
                on_reconnect(reason)
            time.sleep(delay)
