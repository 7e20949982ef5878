"""Network egress for tasks: the operator's allow-list, and the forward proxy that enforces it.

A task that asks for ``"network": "egress"`` (and only where the operator enabled it,
``HOMERUN_ALLOW_TASK_NETWORK``) joins an internal Docker network with no route out. Its
only neighbour with a way out is the egress proxy, Debian's Squid, whose whole
configuration is ``squid_conf`` below: one source for the stack's Swarm config, compose and
the tests. The task gets ``HTTP_PROXY``/``HTTPS_PROXY`` pointing at it; it has no DNS of its
own to the outside (Docker's resolver does not forward for internal networks), so every
name is resolved by the proxy.

What the proxy allows, in this order:

1. a destination whose *resolved* address lies in ``DENIED_NETWORKS`` (private, loopback,
   link-local and cloud metadata, CGNAT, ULA, multicast, NAT64 and the other IPv6 forms that
   embed an IPv4 address) or in the operator's extra ``HOMERUN_EGRESS_DENIED_NETWORKS``
   (homerun's own address pools where they are not private) is refused, whatever its name:
   Squid's ``dst`` ACL looks the name up and matches if *any* of its addresses is denied, so
   ``allowed.example`` resolving to 127.0.0.1 is refused like 127.0.0.1 itself;
2. a request (plain HTTP, or HTTPS through CONNECT) to an allow-listed name and port passes;
3. everything else is refused (403), an address literal included: entries are names only.

Allow-list entries (``HOMERUN_EGRESS_ALLOW``, comma-separated): ``host`` (ports 80 and 443),
``host:port``, ``*.domain`` / ``*.domain:port`` (any name *below* domain, not domain itself).
Every decision is one line of the proxy's access log (stdout): time, client, result
(``TCP_DENIED/403`` for a refusal), method, URL, the server's address and, with the gate,
which token's list decided (``token:<id>``).

A token's own narrower list (``core/egressgate.py``) is checked between steps 1 and 2 when
``squid_conf`` is given a ``Gate``: a request without a credential the stack's key signed is
challenged (407), one whose destination the token's list does not hold is refused (403).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_PORTS",
    "DENIED_NETWORKS",
    "PROXY_PORT",
    "AllowEntry",
    "EgressConfigError",
    "Gate",
    "parse_allow_list",
    "parse_networks",
    "proxy_env",
    "squid_conf",
]

PROXY_PORT = 3128
DEFAULT_PORTS = (80, 443)
# Where the proxy's image carries ``core/egress.py`` and ``core/egressgate.py``
# (images/egress-proxy.Dockerfile).
GATE_LIB_DIR = "/usr/local/lib/homerun"

# Never reachable through the proxy, after resolution. Documentation ranges (192.0.2.0/24,
# 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) are not here: they route nowhere, and the
# tests' stand-in internet lives in them.
DENIED_NETWORKS: tuple[str, ...] = (
    "0.0.0.0/8",  # "this network"; 0.0.0.0 connects to the proxy's own host
    "10.0.0.0/8",
    "100.64.0.0/10",  # CGNAT; also Alibaba's metadata (100.100.100.200)
    "127.0.0.0/8",
    "169.254.0.0/16",  # link-local, the cloud metadata address 169.254.169.254
    "172.16.0.0/12",  # Docker's default bridge and overlay pools
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/127",  # unspecified and loopback
    "::ffff:0:0/96",  # IPv4-mapped
    "::/96",  # IPv4-compatible (deprecated, still parsed by stacks)
    "64:ff9b::/96",  # NAT64, well-known prefix: embeds an IPv4 address
    "64:ff9b:1::/48",  # NAT64, local-use
    "100::/64",  # discard
    "2001::/32",  # Teredo: embeds an IPv4 address
    "2002::/16",  # 6to4: embeds an IPv4 address
    "fc00::/7",  # ULA; AWS's IPv6 metadata fd00:ec2::254
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
)

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_NAME = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")


class EgressConfigError(ValueError):
    """An allow-list entry or a network the proxy cannot be configured with; says which."""


@dataclass(frozen=True)
class AllowEntry:
    """One allow-list entry: a name (or every name under a domain) on some ports."""

    host: str  # lower case; for a wildcard the domain below which names match
    wildcard: bool
    ports: tuple[int, ...]

    def matches(self, host: str, port: int) -> bool:
        """Whether a request to ``host:port`` passes this entry (before the address check)."""
        name = host.lower().rstrip(".")
        if port not in self.ports:
            return False
        if self.wildcard:
            return name.endswith("." + self.host)
        return name == self.host

    def within(self, allow: Sequence[AllowEntry]) -> bool:
        """Whether every request this entry passes, some entry of ``allow`` passes too (a
        token's narrower list may only hold such entries)."""
        return all(any(other._covers(self, port) for other in allow) for port in self.ports)

    def _covers(self, entry: AllowEntry, port: int) -> bool:
        if port not in self.ports:
            return False
        if not entry.wildcard:
            return self.matches(entry.host, port)
        # Every name below entry.host is below self.host: the same domain or one under it.
        return self.wildcard and (entry.host == self.host or entry.host.endswith("." + self.host))


def _parse_entry(raw: str) -> AllowEntry:
    text = raw.strip().lower()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = text, ""
    ports: tuple[int, ...] = DEFAULT_PORTS
    if sep:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise EgressConfigError(f"egress allow-list entry {raw!r}: the port must be 1-65535")
        ports = (int(port_text),)
    wildcard = host.startswith("*.")
    if wildcard:
        host = host[2:]
    if "*" in host:
        raise EgressConfigError(
            f"egress allow-list entry {raw!r}: a wildcard is only allowed as a leading '*.'"
        )
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        raise EgressConfigError(
            f"egress allow-list entry {raw!r}: entries are host names, not addresses"
        )
    if len(host) > 253 or not _NAME.match(host):
        raise EgressConfigError(f"egress allow-list entry {raw!r}: not a valid host name")
    if wildcard and "." not in host:
        raise EgressConfigError(
            f"egress allow-list entry {raw!r}: a wildcard must name a domain with a dot"
            " ('*.example.com', not '*.com')"
        )
    return AllowEntry(host, wildcard, ports)


def parse_allow_list(entries: Iterable[str]) -> tuple[AllowEntry, ...]:
    """The allow-list from its text entries; ``EgressConfigError`` names a bad one."""
    return tuple(_parse_entry(e) for e in entries if e.strip())


def parse_networks(networks: Iterable[str]) -> tuple[str, ...]:
    """CIDRs, normalised; ``EgressConfigError`` names one that is not a network."""
    out = []
    for raw in networks:
        try:
            out.append(str(ipaddress.ip_network(raw.strip(), strict=False)))
        except ValueError:
            raise EgressConfigError(f"{raw!r} is not an IP network (CIDR)") from None
    return tuple(out)


def proxy_env(proxy_url: str) -> dict[str, str]:
    """The environment an egress task gets: both spellings, since tools disagree."""
    # NO_PROXY empty on purpose: nothing is reachable but through the proxy.
    env = {}
    for name in ("HTTP_PROXY", "HTTPS_PROXY"):
        env[name] = proxy_url
        env[name.lower()] = proxy_url
    return env


@dataclass(frozen=True)
class Gate:
    """The per-token gate (``core/egressgate.py``) as the proxy runs it."""

    key_file: str  # the stack's egress-proxy-key, as the proxy's user can read it
    lib_dir: str = GATE_LIB_DIR  # the directory holding ``core/egressgate.py``'s package
    python: str = "/usr/bin/python3"

    def helper(self, *args: str) -> str:
        return " ".join(
            (
                "/usr/bin/env",
                f"PYTHONPATH={self.lib_dir}",
                self.python,
                "-m",
                "core.egressgate",
                *args,
            )
        )


def _gate_lines(gate: Gate) -> list[str]:
    return [
        f"auth_param basic program {gate.helper('auth', gate.key_file)}",
        "auth_param basic children 4 startup=1 idle=1",
        "auth_param basic realm homerun egress",
        # Squid lower-cases user names otherwise, and ours are base64url.
        "auth_param basic casesensitive on",
        # Re-checked this often: an expired credential stops working within a minute.
        "auth_param basic credentialsttl 1 minute",
        "acl token_signed proxy_auth REQUIRED",
        "external_acl_type token_list ttl=60 negative_ttl=60 children-max=4"
        f" children-startup=1 %LOGIN %DST %PORT {gate.helper('allows')}",
        "acl token_allows external token_list",
        # Unsigned or forged: challenged (407), so nothing below is even looked at.
        "http_access deny !token_signed",
        # "all" last: a refusal (403), not a new challenge, when the token's list says no.
        "http_access deny !token_allows all",
    ]


def _dstdomain(entry: AllowEntry) -> tuple[str, str]:
    """(ACL type, value) matching the entry's names; -n: never a reverse lookup of an IP."""
    if entry.wildcard:
        return "dstdom_regex -n -i", "^([^.]+\\.)+" + re.escape(entry.host) + "$"
    return "dstdomain -n", entry.host


def squid_conf(
    allow: Sequence[AllowEntry],
    *,
    extra_denied: Sequence[str] = (),
    port: int = PROXY_PORT,
    gate: Gate | None = None,
) -> str:
    """Squid's whole configuration for this allow-list (Debian bookworm's Squid 5); with a
    ``gate``, each request must also carry a signed token credential whose list holds it."""
    lines = [
        "# Rendered by homerun (core/egress.py): the egress proxy's whole configuration.",
        f"http_port {port}",
        "pid_filename none",
        "cache deny all",
        "cache_mem 0 MB",
        "shutdown_lifetime 1 seconds",
        "logformat homerun %ts.%03tu %>a %Ss/%03>Hs %rm %ru %<a %ea",
        "access_log stdio:/dev/stdout homerun",
        "cache_log stdio:/dev/stderr",
        "cache_store_log none",
        "logfile_rotate 0",
        "via off",
        "forwarded_for delete",
        "httpd_suppress_version_string on",
        # No FTP, no gopher: only what the allow-list says, over http and CONNECT.
        "acl web_schemes proto HTTP",
        "acl CONNECT method CONNECT",
        "http_access deny !CONNECT !web_schemes",
        "acl denied_dst dst " + " ".join((*DENIED_NETWORKS, *extra_denied)),
        # Squid's own: a destination that is one of the proxy's own addresses.
        "http_access deny to_localhost",
        "http_access deny denied_dst",
    ]
    if gate is not None:
        lines += _gate_lines(gate)
    for i, entry in enumerate(allow):
        kind, value = _dstdomain(entry)
        lines.append(f"acl allow{i}_host {kind} {value}")
        lines.append(f"acl allow{i}_port port {' '.join(str(p) for p in entry.ports)}")
        lines.append(f"http_access allow allow{i}_host allow{i}_port")
    lines += [
        "http_access deny all",
        # Answers to the task pass; the proxy serves nothing of its own (no cache manager).
        "http_reply_access allow all",
        "icp_access deny all",
        "htcp_access deny all",
        "snmp_access deny all",
    ]
    return "\n".join(lines) + "\n"
