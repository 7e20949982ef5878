#!/bin/sh
# Entrypoint of homerun's Redis image. Extra arguments are passed to redis-server
# (e.g. `--loglevel verbose`).
#
# Environment:
#   HOMERUN_REDIS_ROLE       queue (default) | events, see redis.Dockerfile for what each means
#   HOMERUN_REDIS_MAXMEMORY  maxmemory, default 0 (no limit); set it below the container's
#                            memory limit so Redis applies its policy before the kernel kills it
#   HOMERUN_REDIS_PORT       default 6379
set -eu

case "${HOMERUN_REDIS_ROLE:-queue}" in
    queue)
        set -- --appendonly yes --appendfsync everysec --save "" \
            --maxmemory-policy noeviction "$@"
        ;;
    events)
        set -- --appendonly no --save "" --maxmemory-policy volatile-lru "$@"
        ;;
    *)
        echo "homerun-redis: HOMERUN_REDIS_ROLE must be queue or events" >&2
        exit 1
        ;;
esac

exec redis-server --port "${HOMERUN_REDIS_PORT:-6379}" --bind "* -::*" \
    --protected-mode no --dir /data --daemonize no --logfile "" \
    --maxmemory "${HOMERUN_REDIS_MAXMEMORY:-0}" "$@"
