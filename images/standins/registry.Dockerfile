# A stand-in for Docker Hub's `registry:2`, for machines that cannot pull it: Debian's
# package of the same registry (CNCF distribution 2.8), with the official image's interface
# (listens on :5000, stores under /var/lib/registry, config at
# /etc/docker/registry/config.yml, REGISTRY_* variables override it, busybox-like `wget`
# for the stack's health check). scripts/cluster.sh builds it and serves it to its nodes as
# the Hub's registry:2; a normal host pulls the real one.
FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker-registry wget \
    && rm -rf /var/lib/apt/lists/*
COPY registry-config.yml /etc/docker/registry/config.yml
VOLUME /var/lib/registry
EXPOSE 5000
ENTRYPOINT ["docker-registry", "serve"]
CMD ["/etc/docker/registry/config.yml"]
