# The egress proxy of the homerun stack: Debian's Squid, the only way out of the internal
# network that egress tasks join. Its whole configuration is rendered by core/egress.py and
# mounted at /etc/squid/squid.conf (a Swarm config in the stack, a bind mount in the tests).
# Beside squid, the image carries the per-token gate Squid runs as its helpers:
# core/egressgate.py and core/egress.py (standard library only: python3, since python3-minimal lacks hmac and json),
# staged into .gate/ by scripts/images.sh. core/egress.py and core/egressgate.py explain it.
FROM debian:bookworm-slim

LABEL org.opencontainers.image.title="homerun egress-proxy" \
      org.opencontainers.image.description="Squid enforcing homerun's egress allow-list"

RUN apt-get update \
    && apt-get install -y --no-install-recommends squid python3 \
    && rm -rf /var/lib/apt/lists/* \
    && rm -f /etc/squid/squid.conf

COPY .gate/core/ /usr/local/lib/homerun/core/

USER proxy
EXPOSE 3128
# -N: stay in the foreground, no daemon child; logs go to stdout/stderr (core/egress.py).
CMD ["squid", "-N", "-f", "/etc/squid/squid.conf"]
