# Redis 7 for homerun, from Debian's packages; one image, two roles (HOMERUN_REDIS_ROLE):
#   queue   the task queue (Redis Streams with consumer groups). Durable: AOF with fsync every
#           second, and noeviction, so a full Redis refuses writes instead of dropping tasks.
#   events  the live-status streams. Postgres' outbox is the record of every event and the
#           notifier relays it again after a restart, so this Redis is a cache of recent
#           history: no AOF, no RDB snapshots (nothing on disk, fast restart), and
#           volatile-lru eviction, which only drops keys that have a TTL (finished jobs'
#           streams) rather than refusing writes under memory pressure.
# See redis-entrypoint.sh for every variable.
FROM debian:bookworm-slim

LABEL org.opencontainers.image.title="homerun redis" \
      org.opencontainers.image.description="Redis 7 (queue and events) for homerun"

# Fixed uid/gid 999 for the redis user (as in the official image): volumes keep their owner
# across rebuilds.
RUN groupadd --system --gid 999 redis \
    && useradd --system --uid 999 --gid 999 --home-dir /var/lib/redis --no-create-home \
        --shell /usr/sbin/nologin redis \
    && apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown redis:redis /data

COPY redis-entrypoint.sh /usr/local/bin/homerun-redis
COPY redis-healthcheck.sh /usr/local/bin/homerun-redis-healthcheck
ENV HOMERUN_REDIS_ROLE=queue
USER redis
WORKDIR /data
VOLUME /data
EXPOSE 6379
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=5 \
    CMD ["homerun-redis-healthcheck"]
ENTRYPOINT ["homerun-redis"]
