"""Webhook destinations and signatures, without a network."""

from __future__ import annotations

import pytest

from core import backoff
from notifier.webhooks import (
    RETRY_JITTER,
    DestinationRefused,
    check_url,
    resolve_destination,
    sign,
    verify,
)

PRIVATE = [
    "http://127.0.0.1/hook",
    "http://127.8.9.10:8080/hook",
    "http://localhost/hook",
    "http://10.1.2.3/hook",
    "http://172.16.0.1/hook",
    "http://192.168.1.20/hook",
    "http://169.254.169.254/latest/meta-data",  # cloud metadata
    "http://100.64.0.1/hook",  # carrier-grade NAT
    "http://0.0.0.0/hook",
    "http://[::1]/hook",
    "http://[fd00::1]/hook",
    "http://[fe80::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped loopback
    "http://224.0.0.1/hook",
]


@pytest.mark.parametrize("url", PRIVATE)
async def test_private_destinations_are_refused_by_default(url: str) -> None:
    with pytest.raises(DestinationRefused, match="non-public address"):
        await resolve_destination(url, allow_private=False)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x", "http://[::1]:9/x", "http://10.0.0.1/x"])
async def test_private_destinations_pass_when_allowed(url: str) -> None:
    destination = await resolve_destination(url, allow_private=True)
    assert destination.url.endswith("/x")


async def test_public_address_is_pinned_with_the_original_host() -> None:
    url = "https://93.184.216.34:8443/cb?x=1"
    destination = await resolve_destination(url, allow_private=False)
    assert destination.url == "https://93.184.216.34:8443/cb?x=1"
    assert destination.address == "93.184.216.34"
    assert destination.host_header == "93.184.216.34:8443"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/x", "http or https"),
        ("http:///x", "no host"),
        ("http://user:pw@example.com/x", "credentials"),
        ("http://example.com:99999/x", "bad port"),
    ],
)
def test_malformed_callback_urls(url: str, message: str) -> None:
    with pytest.raises(DestinationRefused, match=message):
        check_url(url)


def test_signature_round_trip_and_tampering() -> None:
    body = b'{"job":{"id":"j"}}'
    header = sign("s3cret", body, 1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert verify("s3cret", header, body, now=1_700_000_010)
    assert not verify("s3cret", header, body + b" ", now=1_700_000_010)
    assert not verify("other", header, body, now=1_700_000_010)
    assert not verify("s3cret", header, body, now=1_700_001_000)  # stale timestamp: replay
    assert not verify("s3cret", "v1=abc", body)
    assert not verify(
        "s3cret", header.replace("t=1700000000", "t=1700000001"), body, now=1_700_000_010
    )


def test_backoff_grows_and_is_capped() -> None:
    def webhook_backoff(attempt: int, base: float, cap: float) -> float:
        return backoff.delay(attempt, base, cap, jitter=RETRY_JITTER)

    assert 0.8 <= webhook_backoff(1, 1.0, 60.0) <= 1.0
    assert 6.4 <= webhook_backoff(4, 1.0, 60.0) <= 8.0
    assert webhook_backoff(30, 1.0, 60.0) <= 60.0
