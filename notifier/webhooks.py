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
globally routable (``blocked_reason``: private, loopback, link-local, CGNAT, multicast,
reserved, site-local, or an IPv6 form of such an IPv4 address) unless
``webhook_allow_private``; the request then goes to the checked address, so a DNS answer
that changes between the check and the connect cannot redirect it.

A receiver is untrusted too: one deadline bounds the whole exchange, and of its answer
only the status and at most ``RESPONSE_BODY_LIMIT_BYTES`` of raw body are read.
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
    "blocked_reason",
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


# IPv4-compatible addresses (::a.b.c.d, deprecated by RFC 4291): refused whatever they
# embed, as no sender has a reason to use them.
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
# NAT64's well-known prefix (RFC 6052): the address reached is the IPv4 one in the low
# 32 bits, so it is judged by that.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Local-use NAT64 (RFC 8215) translates into the operator's own IPv4 space: never public,
# whatever Python's ``is_global`` says of it (that varies by version).
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")


def blocked_reason(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why ``address`` is no public destination, or None when it is one.

    Refused: multicast; not global (private, loopback, link-local, CGNAT, documentation,
    unspecified, reserved); IPv6 site-local (fec0::/10: deprecated, still routed inside
    sites); local-use NAT64; IPv4-compatible; and an IPv6 address that stands for or
    tunnels to an IPv4 address refused itself: IPv4-mapped (``::ffff:127.0.0.1``), NAT64
    (``64:ff9b::a9fe:a9fe`` is 169.254.169.254), 6to4 (``2002:7f00:1::``), Teredo.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # is the IPv4 address, on a dual-stack socket
            inner = blocked_reason(address.ipv4_mapped)
            return None if inner is None else f"IPv4-mapped {address.ipv4_mapped}: {inner}"
        if address.is_site_local:
            return "site-local"
        if address in _LOCAL_NAT64:
            return "local-use NAT64"
        if address in _IPV4_COMPATIBLE and address.is_global:
            return "IPv4-compatible (deprecated)"
        for embedded in _embedded_ipv4(address):
            inner = blocked_reason(embedded)
            if inner is not None:
                return f"carries {embedded}: {inner}"
    if address.is_multicast:
        return "multicast"
    if not address.is_global:
        return "not globally routable"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses a NAT64, 6to4 or Teredo address reaches through."""
    found: list[ipaddress.IPv4Address] = []
    if address in _NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)  # (server, client)
    return found


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
        reasons = {str(a): blocked_reason(a) for a in addresses}
        blocked = sorted(f"{a}: {why}" for a, why in reasons.items() if why is not None)
        if blocked:
            raise DestinationRefused(
                f"{host!r} resolves to a non-public address ({'; '.join(blocked)}); private"
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
# Of a receiver's answer only the status counts. At most this much of its body is read,
# raw (never decoded: a gzip bomb stays a few compressed bytes), so that a short answer
# leaves the connection reusable; a longer one is cut off by closing the connection.
RESPONSE_BODY_LIMIT_BYTES = 4096


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
            status_code = await self._post(destination, body, row["webhook_secret"], job_id, number)
            if not 200 <= status_code < 300:
                error = f"receiver answered {status_code}"
        except DestinationRefused as exc:
            refused, error = True, str(exc)
        except TimeoutError:
            error = (
                f"the receiver did not answer within {self.policy.timeout_seconds:g} s"
                " (HOMERUN_WEBHOOK_TIMEOUT_SECONDS)"
            )
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
    ) -> int:
        """POST the delivery; the receiver's status code.

        The whole exchange (connect, send, status, the bounded read of the body) has one
        deadline, ``timeout_seconds``: httpx's own timeout applies to each read, so a
        receiver dripping a byte a second would hold this worker, and the delivery row's
        lock, for as long as it liked. ``TimeoutError`` when the deadline passes.
        """
        headers = {
            "Accept-Encoding": "identity",
            "Content-Type": "application/json",
            "Host": destination.host_header,
            "User-Agent": "homerun-webhooks",
            SIGNATURE_HEADER: sign(secret, body, int(time.time())),
            DELIVERY_HEADER: job_id,
            ATTEMPT_HEADER: str(number),
        }
        async with asyncio.timeout(self.policy.timeout_seconds):
            async with self.http.stream(
                "POST",
                destination.url,
                content=body,
                headers=headers,
                timeout=self.policy.timeout_seconds,
                extensions={"sni_hostname": destination.hostname},
            ) as response:
                read = 0
                async for chunk in response.aiter_raw():
                    read += len(chunk)
                    if read > RESPONSE_BODY_LIMIT_BYTES:
                        break  # leaving the block closes the connection, unread
                return response.status_code
