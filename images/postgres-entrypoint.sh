#!/bin/sh
# Entrypoint of homerun's Postgres image. Extra arguments are passed to `postgres`
# (e.g. `-c shared_buffers=256MB`).
#
# Environment (passwords only ever from files):
#   HOMERUN_PG_ROLE                       primary (default) | replica
#   PGDATA                                data directory (a volume), /var/lib/postgresql/data
#   POSTGRES_USER                         the application's role, default homerun (primary)
#   POSTGRES_DB                           the application's database, default homerun (primary)
#   POSTGRES_PASSWORD_FILE                the application role's password (primary; required)
#   HOMERUN_PG_REPLICATION_USER           replication role, default replicator
#   HOMERUN_PG_REPLICATION_PASSWORD_FILE  its password (both roles; required)
#   HOMERUN_PG_PRIMARY_HOST               where the primary answers (replica; required)
#   HOMERUN_PG_PRIMARY_PORT               default 5432 (replica)
#   HOMERUN_PG_WAIT_SECONDS               how long a replica waits for the primary before it
#                                         exits for the orchestrator to restart it, default 300
#   HOMERUN_PG_WAL_KEEP_SIZE              WAL the primary keeps for a replica that falls behind
#                                         or is briefly away, default 512MB (no replication slot:
#                                         a replica scaled to 0 must not fill the primary's disk)
set -eu
set -f # settings such as listen_addresses=* are split into words below, never globbed

ROLE="${HOMERUN_PG_ROLE:-primary}"
PGDATA="${PGDATA:-/var/lib/postgresql/data}"
SOCKETS=/var/run/postgresql
REPL_USER="${HOMERUN_PG_REPLICATION_USER:-replicator}"
export PGDATA

log() { echo "homerun-postgres[$ROLE]: $*" >&2; }
die() { log "$*"; exit 1; }

secret() { # secret VAR_NAME: print the contents of the file $VAR_NAME names
    eval "path=\${$1:-}"
    # shellcheck disable=SC2154 # set by the eval above
    [ -n "$path" ] || die "$1 is not set (passwords are read from files only)"
    [ -r "$path" ] || die "$1=$path cannot be read"
    # Strip one trailing newline, like every secret reader in homerun.
    tr -d '\n' <"$path"
}

# Settings both roles need identically (a hot standby requires these >= the primary's),
# given on the command line so they are never stored in the volume.
common_settings() {
    echo "-c listen_addresses=* -c unix_socket_directories=$SOCKETS -c wal_level=replica" \
        "-c max_wal_senders=10 -c wal_keep_size=${HOMERUN_PG_WAL_KEEP_SIZE:-512MB}" \
        "-c hot_standby=on -c password_encryption=scram-sha-256"
}

write_hba() {
    cat >"$PGDATA/pg_hba.conf" <<EOF
# Written by homerun-postgres at every start; edits here are lost.
local   all          all                 peer
host    replication  $REPL_USER          all   scram-sha-256
host    all          all                 all   scram-sha-256
EOF
}

# Create or update the roles and the database. Idempotent; run at every start of the primary
# so a rotated secret takes effect on the next restart.
provision() {
    app_pw="$(secret POSTGRES_PASSWORD_FILE)"
    repl_pw="$(secret HOMERUN_PG_REPLICATION_PASSWORD_FILE)"
    pg_ctl -D "$PGDATA" -w -s -o "-c listen_addresses='' -c unix_socket_directories=$SOCKETS" start
    psql -h "$SOCKETS" -U postgres -d postgres -qAt -v ON_ERROR_STOP=1 \
        -v app_user="${POSTGRES_USER:-homerun}" -v app_db="${POSTGRES_DB:-homerun}" \
        -v app_pw="$app_pw" -v repl_user="$REPL_USER" -v repl_pw="$repl_pw" <<'SQL' >/dev/null
SELECT format('CREATE ROLE %I LOGIN', :'app_user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_user') \gexec
ALTER ROLE :"app_user" WITH LOGIN PASSWORD :'app_pw';
SELECT format('CREATE ROLE %I REPLICATION LOGIN', :'repl_user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'repl_user') \gexec
ALTER ROLE :"repl_user" WITH REPLICATION LOGIN PASSWORD :'repl_pw';
SELECT format('CREATE DATABASE %I OWNER %I', :'app_db', :'app_user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'app_db') \gexec
SQL
    pg_ctl -D "$PGDATA" -w -s -m fast stop
}

run_primary() {
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        log "initialising a new cluster in $PGDATA"
        initdb -D "$PGDATA" --username=postgres --encoding=UTF8 --no-locale \
            --auth-local=peer --auth-host=scram-sha-256 >/dev/null
    fi
    write_hba
    provision
    log "starting"
    # shellcheck disable=SC2046 # common_settings is a list of words on purpose
    exec postgres $(common_settings) "$@"
}

primary_ready() {
    pg_isready -q -h "$HOMERUN_PG_PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$REPL_USER" -d postgres -t 3
}

# The primary's system identifier, over a replication connection; empty if unreachable.
primary_system_id() {
    psql "host=$HOMERUN_PG_PRIMARY_HOST port=$PRIMARY_PORT user=$REPL_USER replication=true \
dbname=replication passfile=$PGPASSFILE connect_timeout=5" -qAt -c IDENTIFY_SYSTEM 2>/dev/null \
        | cut -d'|' -f1
}

local_system_id() {
    pg_controldata "$PGDATA" 2>/dev/null | sed -n 's/^Database system identifier: *//p'
}

run_replica() {
    [ -n "${HOMERUN_PG_PRIMARY_HOST:-}" ] || die "HOMERUN_PG_PRIMARY_HOST is not set"
    PRIMARY_PORT="${HOMERUN_PG_PRIMARY_PORT:-5432}"
    # A passfile outside the volume, rewritten at every start: the password never lands in
    # PGDATA (pg_basebackup -R would store it in postgresql.auto.conf).
    PGPASSFILE="$SOCKETS/.pgpass"
    export PGPASSFILE
    umask 077
    printf '*:*:*:%s:%s\n' "$REPL_USER" "$(secret HOMERUN_PG_REPLICATION_PASSWORD_FILE)" \
        >"$PGPASSFILE"
    umask 022

    deadline=$(($(date +%s) + ${HOMERUN_PG_WAIT_SECONDS:-300}))
    until primary_ready; do
        [ "$(date +%s)" -lt "$deadline" ] || die "primary $HOMERUN_PG_PRIMARY_HOST not ready in time"
        log "waiting for primary $HOMERUN_PG_PRIMARY_HOST:$PRIMARY_PORT"
        sleep 2 # polling interval, bounded by the deadline above
    done

    if [ -s "$PGDATA/PG_VERSION" ]; then
        # A primary recreated from scratch (its volume purged) has a new identity: this copy
        # can never stream from it again, so start over from a fresh base backup.
        primary_id="$(primary_system_id)"
        if [ -n "$primary_id" ] && [ "$primary_id" != "$(local_system_id)" ]; then
            log "primary has a different system identifier: discarding this copy"
            find "$PGDATA" -mindepth 1 -delete
        fi
    fi
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        log "base backup from $HOMERUN_PG_PRIMARY_HOST"
        find "$PGDATA" -mindepth 1 -delete # leftovers of an interrupted backup
        pg_basebackup -h "$HOMERUN_PG_PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$REPL_USER" \
            -D "$PGDATA" -X stream --checkpoint=fast --no-password
    fi
    touch "$PGDATA/standby.signal"
    chmod 0700 "$PGDATA"
    log "starting as a hot standby of $HOMERUN_PG_PRIMARY_HOST"
    # shellcheck disable=SC2046 # common_settings is a list of words on purpose
    exec postgres $(common_settings) \
        -c "primary_conninfo=host=$HOMERUN_PG_PRIMARY_HOST port=$PRIMARY_PORT user=$REPL_USER passfile=$PGPASSFILE application_name=${HOSTNAME:-replica}" \
        "$@"
}

case "$ROLE" in
    primary) run_primary "$@" ;;
    replica) run_replica "$@" ;;
    *) die "HOMERUN_PG_ROLE must be primary or replica, got '$ROLE'" ;;
esac
