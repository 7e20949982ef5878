# The edge proxy of the homerun stack: HAProxy from Debian's packages, the only service that
# publishes a port. Its whole configuration comes from the stack as a Swarm config
# (stack/conffiles.py) mounted at /usr/local/etc/haproxy/haproxy.cfg; the stack also sets the
# command, so this image only has to carry haproxy (and bash, for the /dev/tcp health check).
# Added by the stack engineer (stack/topology.py explains why the edge exists).
FROM debian:bookworm-slim

LABEL org.opencontainers.image.title="homerun edge" \
      org.opencontainers.image.description="HAProxy in front of the homerun API"

RUN apt-get update \
    && apt-get install -y --no-install-recommends haproxy \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /usr/local/etc/haproxy

USER haproxy
EXPOSE 8000
STOPSIGNAL SIGUSR1
CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
