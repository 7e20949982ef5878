#!/usr/bin/env bash
# make rotate SECRET=<key>: give one of the stack's secrets a new value, with no failed request.
#
# The new value goes into .homerun/stacks/<stack>/secrets/<key> (the old one is kept beside
# it as <key>.previous), the stack is deployed again: the secret's name is derived from its
# value (stack/secretfiles.py), so it is a new Swarm secret and every service using it rolls
# onto it in place (the API start-first behind the edge's retries), then the old secret is
# pruned. With Pulumi: `pulumi config set --secret <configKey> <value>` and `pulumi up`.
#
#   SECRET      the key: admin-token, db-password, replication-password (stack/topology.py)
#   VALUE_FILE  take the new value from this file instead of generating one
#   HOMERUN_STACK  as for make up
# db-password and replication-password are also Postgres's: ALTER ROLE first, with the new
# value, then rotate with VALUE_FILE (docs/operations.md, "Upgrades and rotation");
# PG_ALTERED=1 says that was done. secrets-keyring needs VALUE_FILE: the whole new keyring,
# the old keys' lines kept (a generated value would drop them and is no keyring);
# docs/operations.md, "Rotating the key".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
STACK="${HOMERUN_STACK:-homerun}"
KEY="${SECRET:-}"
DIR=".homerun/stacks/$STACK/secrets"

log() { printf '[rotate] %s\n' "$*" >&2; }

known="$("$PY" -c 'from stack.topology import SECRET_KEYS; print(" ".join(SECRET_KEYS))')"
case " $known " in
    *" $KEY "*) ;;
    *) log "SECRET must be one of: $known (got '${KEY}')"; exit 2 ;;
esac
case "$KEY" in
    db-password | replication-password)
        if [ "${PG_ALTERED:-0}" != 1 ] || [ -z "${VALUE_FILE:-}" ]; then
            log "$KEY is also Postgres's password: ALTER ROLE with the new value first, then"
            log "make rotate SECRET=$KEY VALUE_FILE=<file with it> PG_ALTERED=1"
            log "(docs/operations.md, Upgrades and rotation)"
            exit 2
        fi
        ;;
    secrets-keyring)
        if [ -z "${VALUE_FILE:-}" ] || ! "$PY" -c 'import sys; from core.sealing import Keyring; Keyring.parse(open(sys.argv[1]).read())' "$VALUE_FILE"; then
            log "$KEY needs VALUE_FILE=<the whole new keyring>: the current lines and a new one"
            log "(homerun secrets-keygen <id>), docs/operations.md, Rotating the key"
            exit 2
        fi
        ;;
esac
[ -f "$DIR/$KEY" ] || { log "$DIR/$KEY is missing: is stack $STACK deployed from here?"; exit 2; }
# The stack must be the one these files describe before one of them changes.
"$PY" scripts/stackctl.py preflight "$STACK" "$DIR"

tmp="$(mktemp "$DIR/.$KEY.XXXXXX")"
if [ -n "${VALUE_FILE:-}" ]; then
    cat "$VALUE_FILE" >"$tmp"
else
    "$PY" -c 'import secrets; print(secrets.token_urlsafe(32), end="")' >"$tmp"
fi
chmod 600 "$tmp"
cp -p "$DIR/$KEY" "$DIR/$KEY.previous"
mv "$tmp" "$DIR/$KEY"
log "new value in $DIR/$KEY (the previous one in $DIR/$KEY.previous); deploying"
if ! HOMERUN_ROTATE="$KEY" HOMERUN_SKIP_IMAGES="${HOMERUN_SKIP_IMAGES:-1}" \
    HOMERUN_SKIP_SAMPLE="${HOMERUN_SKIP_SAMPLE:-1}" scripts/up.sh >/dev/null; then
    log "the deploy failed; the stack may be part-way: fix it and run make rotate again," \
        "or put $DIR/$KEY.previous back and run HOMERUN_ROTATE=$KEY make up (without it," \
        "make up's preflight stops at a value the stack does not have)"
    exit 1
fi
log "rotated $KEY on stack $STACK"
