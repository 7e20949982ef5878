#!/usr/bin/env bash
# make down: remove every service, network, secret and config of the stack, and nothing else.
# Volumes (the database, the queue) stay unless PURGE=1. Run again: nothing left, no error.
#
# Environment: HOMERUN_STACK (default homerun), PURGE=1 to remove the stack's volumes too,
# HOMERUN_DOWN_TIMEOUT (seconds, default 120).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
STACK="${HOMERUN_STACK:-homerun}"
STATE=".homerun/stacks/$STACK"

log() { printf '[down] %s\n' "$*" >&2; }

if ! docker info >/dev/null 2>&1; then
    log "no Docker engine answers: nothing to remove"
    exit 0
fi

if [ "$(cat "$STATE/deployer" 2>/dev/null)" = pulumi ] && command -v pulumi >/dev/null; then
    log "pulumi destroy"
    pulumi destroy --yes --skip-preview
fi

# Also what `pulumi destroy` or `docker stack rm` would leave: found by the stack's label and
# by the exact names of its topology, never by a broad pattern.
args=("$STACK" --timeout "${HOMERUN_DOWN_TIMEOUT:-120}")
[ "${PURGE:-0}" = 1 ] && args+=(--purge)
"$PY" scripts/stackctl.py remove "${args[@]}"
if ! left="$("$PY" scripts/stackctl.py leftovers "$STACK")"; then
    log "still present: $left"
    exit 1
fi
if [ "${PURGE:-0}" = 1 ]; then
    # The runners' per-attempt workspaces of this stack (HOMERUN_INSTANCE is the stack name,
    # stack/topology.py), on this node.
    [[ $STACK =~ ^[a-z0-9][a-z0-9_-]*$ ]] && rm -rf "/var/lib/homerun/work/$STACK"
elif [ "$left" != "{}" ]; then
    log "kept volumes (PURGE=1 removes them): $left"
fi
log "stack $STACK is down"
