"""Webhook destinations and signatures, without a network."""

from __future__ import annotations

import ipaddress

import pytest

from core import backoff
from notifier.webhooks import (
    RETRY_JITTER,
    DestinationRefused,
    blocked_reason,
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
    # What passed before (issue 12 item 9): IPv6 forms that reach a private IPv4 address.
    "http://[::127.0.0.1]/hook",  # IPv4-compatible loopback
    "http://[64:ff9b::7f00:1]/hook",  # NAT64 of 127.0.0.1
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data",  # NAT64 of 169.254.169.254
    "http://[fec0::1]/hook",  # site-local
    "http://[64:ff9b:1::808:808]/hook",  # local-use NAT64, whatever it embeds
    "http://[2002:7f00:1::1]/hook",  # 6to4 of 127.0.0.1
    "http://[2002:a9fe:a9fe::]/hook",  # 6to4 of 169.254.169.254
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook",  # Teredo, client 127.0.0.1
    "http://[::8.8.8.8]/hook",  # IPv4-compatible: deprecated, refused whatever it embeds
    "http://[ff0e::1]/hook",  # global-scope multicast
]

# (address, why it is refused; None: it is a public destination)
REASONS = [
    ("127.0.0.1", "not globally routable"),
    ("::ffff:127.0.0.1", "IPv4-mapped 127.0.0.1: not globally routable"),
    ("::127.0.0.1", "IPv4-compatible (deprecated)"),
    ("64:ff9b::7f00:1", "carries 127.0.0.1: not globally routable"),
    ("64:ff9b::a9fe:a9fe", "carries 169.254.169.254: not globally routable"),
    ("64:ff9b::a00:1", "carries 10.0.0.1: not globally routable"),
    ("64:ff9b:1::808:808", "local-use NAT64"),
    ("fec0::1", "site-local"),
    ("feff::1", "site-local"),
    ("2002:c0a8:101::1", "carries 192.168.1.1: not globally routable"),
    ("ff02::1", "multicast"),
    ("::", "not globally routable"),
    ("::1", "not globally routable"),
    ("fe80::1%eth0", "not globally routable"),
    ("8.8.8.8", None),
    ("::ffff:8.8.8.8", None),  # the IPv4 address itself, on a dual-stack socket
    ("64:ff9b::808:808", None),  # NAT64 to a public address
    ("2002:808:808::1", None),  # 6to4 of a public address
    ("2001:4860:4860::8888", None),
]


@pytest.mark.parametrize(("address", "why"), REASONS)
def test_why_an_address_is_no_public_destination(address: str, why: str | None) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) == why


@pytest.mark.parametrize("url", PRIVATE)
async def test_private_destinations_are_refused_by_default(url: str) -> None:
    with pytest.raises(DestinationRefused, match="non-public address"):
        await resolve_destination(url, allow_private=False)


async def test_the_refusal_says_why() -> None:
    with pytest.raises(DestinationRefused) as refused:
        await resolve_destination("http://[64:ff9b::a9fe:a9fe]/x", allow_private=False)
    assert str(refused.value) == (
        "'64:ff9b::a9fe:a9fe' resolves to a non-public address (64:ff9b::a9fe:a9fe: carries"
        " 169.254.169.254: not globally routable); private destinations need"
        " HOMERUN_WEBHOOK_ALLOW_PRIVATE"
    )


@pytest.mark.parametrize(
    "url", ["http://[64:ff9b::808:808]/x", "http://[2002:808:808::1]/x", "http://8.8.8.8/x"]
)
async def test_public_destinations_pass(url: str) -> None:
    destination = await resolve_destination(url, allow_private=False)
    assert destination.url.endswith("/x")


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
