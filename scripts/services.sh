#!/usr/bin/env bash
# Start the local Postgres and Redis the test suite talks to, if they are not answering.
set -euo pipefail

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "services: starting Postgres"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "services: starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /tmp --logfile /tmp/homerun-redis.log
fi
for _ in $(seq 100); do
    pg_isready -q -h 127.0.0.1 -p 5432 && redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && exit 0
    sleep 0.1
done
echo "services: Postgres or Redis did not come up" >&2
exit 1
