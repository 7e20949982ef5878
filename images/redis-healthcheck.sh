#!/bin/sh
# Healthcheck of homerun's Redis image: PONG from the local server. The password (if the
# server has one, see redis-entrypoint.sh) travels in REDISCLI_AUTH, never on a command line.
set -eu
if [ -n "${HOMERUN_REDIS_PASSWORD_FILE:-}" ]; then
    REDISCLI_AUTH="$(cat "$HOMERUN_REDIS_PASSWORD_FILE")"
    export REDISCLI_AUTH
fi
redis-cli -p "${HOMERUN_REDIS_PORT:-6379}" ping | grep -qx PONG
