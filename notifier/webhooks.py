"""Webhooks: a job's ``callback_url`` receives its terminal state, signed, once.

Scheduling: a delivery row (migration 0003) is created for a job with a callback URL when
its terminal event is still unrelayed, both in the relay's own transaction (so no event is
marked relayed without its delivery) and by a Postgres-only sweep (so webhooks keep going
while the streams Redis is down). The SQL of both tables is in ``core.store.webhooks``.

Delivery: a notifier claims a due row with ``FOR UPDATE SKIP LOCKED`` and keeps it locked
for the whole HTTP call, so several notifiers never send the same delivery at once, and
a delivered row is never sent again. Every attempt is recorded in ``webhook_attempts``;
failures are retried with exponential backoff up to ``webhook_max_attempts``.

Signature: ``Homerun-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``
with the submitting token's ``webhook_secret``. Receivers check it with ``verify`` and
reject stale timestamps; ``Homerun-Delivery`` (the job id) lets them drop repeats.

Destinations are resolved before each attempt and refused when any address is not
globally routable (private, loopback, link-local, CGNAT, multicast, reserved) unless
``webhook_allow_private``; the request then goes to the checked address, so a DNS answer
that changes between the check and the connect cannot redirect it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from databases import Database
from databases.core import Connection
from databases.interfaces import Record

from core import backoff
from core.store import webhooks as webhook_store

__all__ = [
    "DELIVERY_HEADER",
    "SIGNATURE_HEADER",
    "Deliverer",
    "Destination",
    "DestinationRefused",
    "Policy",
    "check_url",
    "resolve_destination",
    "sign",
    "verify",
]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Homerun-Signature"
DELIVERY_HEADER = "Homerun-Delivery"
ATTEMPT_HEADER = "Homerun-Delivery-Attempt"
SIGNATURE_TOLERANCE_SECONDS = 300

# --- signing ------------------------------------------------------------------------------


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str,
    header: str,
    body: bytes,
    *,
    tolerance: float = SIGNATURE_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """Check a ``Homerun-Signature`` header, as a receiver should."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


# --- destinations -------------------------------------------------------------------------


class DestinationRefused(Exception):
    """The callback URL may not be called (malformed, or not a public address)."""


@dataclass(frozen=True)
class Destination:
    url: str  # with the host replaced by the checked address
    hostname: str  # the original host name, for TLS (SNI and certificate check)
    host_header: str  # the original host[:port], for the Host header
    address: str


def _blocked(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


def check_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an acceptable callback URL; raises ``DestinationRefused``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise DestinationRefused(f"callback URL must be http or https, got {parts.scheme!r}")
    if not parts.hostname:
        raise DestinationRefused("callback URL has no host")
    if parts.username or parts.password:
        raise DestinationRefused("callback URL must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise DestinationRefused(f"callback URL has a bad port: {exc}") from None
    return parts.scheme, parts.hostname, port


async def resolve_destination(url: str, *, allow_private: bool) -> Destination:
    scheme, host, port = check_url(url)
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise DestinationRefused(f"cannot resolve {host!r}: {exc}") from None
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not addresses:
        raise DestinationRefused(f"{host!r} resolves to no address")
    if not allow_private:
        blocked = sorted({str(a) for a in addresses if _blocked(a)})
        if blocked:
            raise DestinationRefused(
                f"{host!r} resolves to a non-public address ({', '.join(blocked)}); private"
                " destinations need HOMERUN_WEBHOOK_ALLOW_PRIVATE"
            )
    address = addresses[0]
    netloc = f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
    parts = urlsplit(url)
    pinned = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
    return Destination(url=pinned, hostname=host, host_header=parts.netloc, address=str(address))


# --- delivery -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    allow_private: bool
    max_attempts: int
    retry_base_seconds: float
    retry_max_seconds: float
    timeout_seconds: float


# Some jitter spreads the retries of many jobs whose receiver went down together.
RETRY_JITTER = 0.2


async def payload(conn: Connection, job_id: str, event_seq: int) -> bytes:
    """The body of the job's delivery: its terminal event's type, the job and its tasks."""
    job, tasks = await webhook_store.job_state(conn, job_id, event_seq)
    body: dict[str, Any] = {
        "type": job["type"],
        "job": {
            "id": str(job["id"]),
            "name": job["name"],
            "labels": json.loads(job["labels"]),
            "status": job["status"],
            "created_at": job["created_at"].isoformat(),
            "finished_at": job["finished_at"].isoformat() if job["finished_at"] else None,
            "tasks": [
                {
                    "id": str(t["id"]),
                    "name": t["name"],
                    "type": t["type"],
                    "status": t["status"],
                    "attempts": t["attempts"],
                    "error": t["error"],
                }
                for t in tasks
            ],
        },
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


class Deliverer:
    def __init__(self, db: Database, http: httpx.AsyncClient, policy: Policy) -> None:
        self.db = db
        self.http = http
        self.policy = policy

    async def next_due_in(self) -> float | None:
        """Seconds until the next delivery nobody is sending is due (0 if overdue); None if
        none (``core.store.webhooks.next_due_in`` says why one being sent does not count)."""
        return await webhook_store.next_due_in(self.db)

    async def deliver_one(self) -> bool:
        """Claim one due delivery and attempt it; False when none is due."""
        async with self.db.connection() as conn, conn.transaction():
            row = await webhook_store.claim_due(conn)
            if row is None:
                return False
            await self._attempt(conn, row)
        return True

    async def _attempt(self, conn: Connection, row: Record) -> None:
        job_id, url = str(row["job_id"]), row["url"]
        number = int(row["attempts"]) + 1
        started = datetime.now(UTC)
        status_code: int | None = None
        error: str | None = None
        refused = False
        try:
            destination = await resolve_destination(url, allow_private=self.policy.allow_private)
            body = await payload(conn, job_id, int(row["event_seq"]))
            response = await self._post(destination, body, row["webhook_secret"], job_id, number)
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"receiver answered {status_code}"
        except DestinationRefused as exc:
            refused, error = True, str(exc)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        await webhook_store.record_attempt(
            conn, job_id, number, url=url, started=started, status_code=status_code, error=error
        )
        if error is None:
            status, next_at = "delivered", started
        elif refused:
            status, next_at = "refused", started
        elif number >= self.policy.max_attempts:
            status, next_at = "failed", started
        else:
            delay = backoff.delay(
                number,
                self.policy.retry_base_seconds,
                self.policy.retry_max_seconds,
                jitter=RETRY_JITTER,
            )
            status, next_at = "pending", datetime.now(UTC) + timedelta(seconds=delay)
        log.log(
            logging.INFO if error is None else logging.WARNING,
            "webhook for job %s attempt %d: %s",
            job_id,
            number,
            error or "delivered",
        )
        await webhook_store.set_outcome(
            conn, job_id, attempts=number, status=status, error=error, next_attempt_at=next_at
        )

    async def _post(
        self, destination: Destination, body: bytes, secret: str, job_id: str, number: int
    ) -> httpx.Response:
        headers = {
            "Content-Type": "application/json",
            "Host": destination.host_header,
            "User-Agent": "homerun-webhooks",
            SIGNATURE_HEADER: sign(secret, body, int(time.time())),
            DELIVERY_HEADER: job_id,
            ATTEMPT_HEADER: str(number),
        }
        return await self.http.post(
            destination.url,
            content=body,
            headers=headers,
            timeout=self.policy.timeout_seconds,
            extensions={"sni_hostname": destination.hostname},
        )
