#!/bin/sh
# Entrypoint of the homerun application image.
#
#   <image> api|runner|notifier|migrate|...   runs `homerun <args>`
#   <image> sh -c ...                         runs any other program as given
#
# Started as root (the stack does that for the Docker API guard, for the engine's socket, and
# for the runner, for its directories), it adds the socket's group, hands the runner's work
# directory (HOMERUN_WORK_DIR, a bind mount of the same host path: runners/workspace.py), or the
# guard's socket directory, to the homerun user, drops to that user with no capabilities and
# no-new-privileges, and runs the command; started as homerun (the default), it just runs it.
set -eu

HOMERUN_UID=10001

case "${1:-}" in
    "" | -*) set -- homerun "$@" ;;
    *)
        # Anything that is not a program on PATH is a homerun subcommand.
        if ! command -v "$1" >/dev/null 2>&1; then
            set -- homerun "$@"
        fi
        ;;
esac

if [ "$(id -u)" = 0 ]; then
    groups="$HOMERUN_UID"
    role=
    if [ "${1:-}" = homerun ]; then
        role="${2:-}"
    fi
    if [ "$role" = guard ]; then
        # The guard alone holds the engine's socket (guard/); its own socket's directory is
        # the volume it shares with the runners of its node. The work and secrets
        # directories are read-only here: the guard only follows paths in them.
        sock="${HOMERUN_GUARD_UPSTREAM:-unix:///var/run/docker.sock}"
        guard_dir="$(dirname "${HOMERUN_GUARD_SOCKET:-/run/homerun-guard/docker.sock}")"
        mkdir -p "$guard_dir"
        chown "$HOMERUN_UID:$HOMERUN_UID" "$guard_dir"
        chmod 0700 "$guard_dir"
    else
        sock="${HOMERUN_DOCKER_URL:-${DOCKER_HOST:-unix:///var/run/docker.sock}}"
    fi
    sock="${sock#unix://}"
    if [ -S "$sock" ]; then
        groups="$groups,$(stat -c %g "$sock")"
    fi
    work="${HOMERUN_WORK_DIR:-/var/lib/homerun/work}"
    if [ "$role" != guard ] && [ -d "$(dirname "$work")" ]; then
        mkdir -p "$work"
        chown "$HOMERUN_UID:$HOMERUN_UID" "$work"
    fi
    # The runner hands each task its secret files (runners/secretfiles.py): the host tmpfs
    # is the homerun user's, and the runner keeps CAP_CHOWN alone, to give each file to its
    # task's uid.
    caps=-all
    ambient=
    if [ "$role" = runner ]; then
        secrets_dir="${HOMERUN_SECRETS_DIR:-/run/homerun-secrets}"
        if [ -d "$secrets_dir" ]; then
            chown "$HOMERUN_UID:$HOMERUN_UID" "$secrets_dir"
            chmod 0700 "$secrets_dir"
        fi
        caps=-all,+chown
        ambient=--ambient-caps=-all,+chown
    fi
    # root's HOME would make libraries look for their files under /root (asyncpg stats
    # ~/.postgresql/postgresql.key and fails on the permission).
    export HOME=/nonexistent USER=homerun LOGNAME=homerun
    # shellcheck disable=SC2086 # $ambient is one option or none
    exec setpriv --reuid="$HOMERUN_UID" --regid="$HOMERUN_UID" --groups="$groups" \
        --inh-caps="$caps" $ambient --bounding-set="$caps" --no-new-privs -- "$@"
fi
exec "$@"
