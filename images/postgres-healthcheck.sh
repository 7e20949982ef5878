#!/bin/sh
# Healthy: the server accepts connections, and is in the role it was started for (a replica
# must be in recovery; a primary must not be).
set -eu
pg_isready -q -h /var/run/postgresql || exit 1
in_recovery="$(psql -h /var/run/postgresql -U postgres -d postgres -Atqc 'select pg_is_in_recovery()')"
case "${HOMERUN_PG_ROLE:-primary}" in
    primary) [ "$in_recovery" = f ] ;;
    replica) [ "$in_recovery" = t ] ;;
    *) exit 1 ;;
esac
