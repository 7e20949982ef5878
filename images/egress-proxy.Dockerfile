# The egress proxy of the homerun stack: Debian's Squid, the only way out of the internal
# network that egress tasks join. Its whole configuration is rendered by core/egress.py and
# mounted at /etc/squid/squid.conf (a Swarm config in the stack, a bind mount in the tests);
# this image only carries squid. Added by the egress engineer (core/egress.py explains it).
FROM debian:bookworm-slim

LABEL org.opencontainers.image.title="homerun egress-proxy" \
      org.opencontainers.image.description="Squid enforcing homerun's egress allow-list"

RUN apt-get update \
    && apt-get install -y --no-install-recommends squid \
    && rm -rf /var/lib/apt/lists/* \
    && rm -f /etc/squid/squid.conf

USER proxy
EXPOSE 3128
# -N: stay in the foreground, no daemon child; logs go to stdout/stderr (core/egress.py).
CMD ["squid", "-N", "-f", "/etc/squid/squid.conf"]
