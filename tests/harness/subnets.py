"""Address ranges a test may take for a stand-in network: ones this host does not use.

A documentation range is not unused by definition: a sandbox host may sit on 192.0.2.0/24
itself (its address and its default gateway there), and giving a test interface an address
in it would cut the host off. So every candidate is checked against the host's routes and
addresses (``ip -j``) before a test puts anything in it.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Iterable

__all__ = ["first_unused", "unused_by_host"]


def _host_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    found: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for argv in (["ip", "-j", "route", "show", "table", "all"], ["ip", "-j", "-6", "route"]):
        out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=10)
        for route in json.loads(out.stdout or "[]"):
            dst = route.get("dst", "default")
            if dst != "default":
                found.append(ipaddress.ip_network(dst, strict=False))
    out = subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, check=True)
    for link in json.loads(out.stdout or "[]"):
        for a in link.get("addr_info", []):
            found.append(ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False))
    return found


def unused_by_host(cidr: str) -> bool:
    """Whether no route or address of this host overlaps ``cidr``."""
    net = ipaddress.ip_network(cidr)
    return not any(n.version == net.version and n.overlaps(net) for n in _host_networks())


def first_unused(candidates: Iterable[str]) -> str:
    """The first candidate range this host does not use; AssertionError if none."""
    tried = []
    for cidr in candidates:
        if unused_by_host(cidr):
            return cidr
        tried.append(cidr)
    raise AssertionError(f"every candidate range is in use on this host: {tried}")
