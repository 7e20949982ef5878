"""Configuration files the stack hands its services as Swarm configs."""

from __future__ import annotations

# Swarm's embedded DNS, re-asked every second: a task that moved is found again at once.
_SWARM_RESOLVERS = """resolvers swarm
    nameserver dns 127.0.0.11:53
    accepted_payload_size 8192
    resolve_retries 3
    timeout resolve 1s
    timeout retry 1s
    hold valid 1s
    hold other 1s
    hold refused 1s
    hold nx 1s
    hold timeout 1s
    hold obsolete 1s
"""


def haproxy_cfg(
    *,
    listen_port: int,
    backend_host: str,
    backend_port: int,
    slots: int,
    connections_per_source: int | None,
) -> str:
    """The edge proxy in front of the API: the only published port of the stack.

    A host-mode port is bound by one task per node, so two API replicas on one node cannot
    both publish it, and a start-first rolling update would collide with itself. The edge
    holds the port instead and spreads requests over the API tasks found by DNS
    (``server-template`` re-resolves every second), health-checks each one, and retries a
    request whose connection failed on another task: that is what lets a rolling update of
    the API lose no request, with or without the routing mesh.

    Per-source limits keep the port answering when one client misbehaves: a source over
    its connection count is closed at accept (before any buffer is given to it), and a
    request must arrive whole within 10 s (a slowloris drips it). Request rates are the
    API's to limit, per token and per source (core/limits.py).
    ``connections_per_source=None`` leaves them out: behind Swarm's routing mesh every
    client arrives from the mesh's own address, so a per-source limit would be a global one.
    """
    per_source = ""
    if connections_per_source is not None:
        per_source = f"""
    # One entry per client address (IPv4 ones stored mapped), forgotten 30 s after its
    # last connection ends.
    stick-table type ipv6 size 100k expire 30s store conn_cur
    tcp-request connection track-sc0 src
    tcp-request connection reject if {{ sc0_conn_cur gt {connections_per_source} }}"""
    return f"""# Rendered by stack/conffiles.py.
global
    log stdout format raw local0 warning
    maxconn 4096

defaults
    mode http
    log global
    option httplog
    # The client's address, for the API's per-source limits (HOMERUN_FORWARDED_ALLOW_IPS).
    option forwardfor
    timeout connect 2s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
    # A request's headers must arrive whole in this time (a slowloris drips them); an idle
    # keep-alive connection is closed as soon. Streams (SSE) are answers, not requests.
    timeout http-request 10s
    timeout http-keep-alive 10s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response

{_SWARM_RESOLVERS}
frontend api
    bind :{listen_port}
    monitor-uri /edge-healthz{per_source}
    default_backend api

backend api
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    default-server inter 1s fall 2 rise 1 resolvers swarm resolve-prefer ipv4 init-addr none
    server-template api {slots} {backend_host}:{backend_port} check
"""


def registry_proxy_cfg(*, listen_port: int, backend_host: str, backend_port: int) -> str:
    """``registry-proxy``: the stack's registry on every node's 127.0.0.1, without IPVS.

    Engines pull from ``127.0.0.1:<port>`` (trusted without TLS), so every node must answer
    there. A host-mode port exists only where a task runs; this proxy runs on every node,
    holds the port and passes the bytes (TCP mode: the registry sees the client's Host and
    builds its upload URLs from it) to the one registry task over the overlay. Timeouts are
    inactivity timeouts, long enough for a big layer's upload or a slow pull.
    """
    return f"""# Rendered by stack/conffiles.py.
global
    log stdout format raw local0 warning
    maxconn 1024

defaults
    mode tcp
    log global
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    retries 3

{_SWARM_RESOLVERS}
frontend registry
    bind :{listen_port}
    default_backend registry

backend registry
    default-server inter 2s fall 2 rise 1 resolvers swarm resolve-prefer ipv4 init-addr none
    server-template registry 1 {backend_host}:{backend_port} check
"""
