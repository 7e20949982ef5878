#!/bin/sh
# Entrypoint of the homerun application image.
#
#   <image> api|runner|notifier|migrate|...   runs `homerun <args>`
#   <image> sh -c ...                         runs any other program as given
#
# Started as root (the stack does that for the runner only, for the Docker socket), it adds the
# socket's group, hands the runner's work directory (HOMERUN_WORK_DIR, a bind mount of the same
# host path: runners/workspace.py) to the homerun user, drops to that user with no
# capabilities and no-new-privileges, and runs the command; started as homerun (the default),
# it just runs it.
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
    sock="${HOMERUN_DOCKER_URL:-${DOCKER_HOST:-unix:///var/run/docker.sock}}"
    sock="${sock#unix://}"
    if [ -S "$sock" ]; then
        groups="$groups,$(stat -c %g "$sock")"
    fi
    work="${HOMERUN_WORK_DIR:-/var/lib/homerun/work}"
    if [ -d "$(dirname "$work")" ]; then
        mkdir -p "$work"
        chown "$HOMERUN_UID:$HOMERUN_UID" "$work"
    fi
    # The runner hands each task its secret files (runners/secretfiles.py): the host tmpfs
    # is the homerun user's, and the runner keeps CAP_CHOWN alone, to give each file to its
    # task's uid (it holds the Docker socket already, which is far more than that).
    caps=-all
    ambient=
    if [ "${1:-}" = homerun ] && [ "${2:-}" = runner ]; then
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
