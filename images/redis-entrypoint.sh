#!/bin/sh
# Entrypoint of homerun's Redis image. Extra arguments are passed to redis-server
# (e.g. `--loglevel verbose`).
#
# Environment:
#   HOMERUN_REDIS_ROLE       queue (default) | events, see redis.Dockerfile for what each means
#   HOMERUN_REDIS_MAXMEMORY  maxmemory, default 0 (no limit); set it below the container's
#                            memory limit so Redis applies its policy before the kernel kills it
#   HOMERUN_REDIS_PORT       default 6379
#   HOMERUN_REDIS_PASSWORD_FILE  a file (a Swarm secret) holding the password clients must
#                            give (requirepass); without one Redis answers anyone who reaches it,
#                            which only a test or a private network may want
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

# The password goes in through the configuration read from stdin ("-"), never on the
# command line, where every process of the container could read it in /proc.
password=""
if [ -n "${HOMERUN_REDIS_PASSWORD_FILE:-}" ]; then
    password="$(cat "$HOMERUN_REDIS_PASSWORD_FILE")"
    [ -n "$password" ] || { echo "homerun-redis: $HOMERUN_REDIS_PASSWORD_FILE is empty" >&2; exit 1; }
    case "$password" in
        *[!A-Za-z0-9_-]*)
            echo "homerun-redis: the password must be URL-safe (A-Z a-z 0-9 _ -)" >&2
            exit 1
            ;;
    esac
fi
requirepass=""
[ -z "$password" ] || requirepass="requirepass $password"
# protected-mode only guards a Redis with no password; with one, requirepass does.
# A here-document, not a pipe: exec keeps redis-server as PID 1, which Swarm signals.
exec redis-server - --port "${HOMERUN_REDIS_PORT:-6379}" --bind "* -::*" \
    --protected-mode no --dir /data --daemonize no --logfile "" \
    --maxmemory "${HOMERUN_REDIS_MAXMEMORY:-0}" "$@" <<EOF
$requirepass
EOF
