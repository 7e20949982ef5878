#!/usr/bin/env bash
# gVisor's runsc registered with this machine's Docker engine as the runtime "runsc", when it
# can run here; idempotent (on a ready host it only runs `docker info`).
#
#   - runsc missing: apt-get install runsc (Debian's package);
#   - `runsc --platform=ptrace do true` must work (the KVM platform hangs on hosts without
#     nested virtualisation, so ptrace is the one registered); if it does not, exit 3 and say
#     why: the caller decides whether that is fatal (HOMERUN_TASK_RUNTIME=runsc) or not (auto);
#   - /etc/docker/daemon.json gets the runtime, merged into what the file already has, and the
#     engine reloads it on SIGHUP (running containers and services are not restarted);
#   - wait, bounded, until `docker info` lists it.
#
# The arguments are those of docs/operations.md, "Task runtime": --network=none (tasks have
# no network; runsc refuses to start here without it) and --oci-seccomp (gVisor applies the
# task seccomp profile inside the sandbox too).
set -euo pipefail

DAEMON_JSON="${HOMERUN_DAEMON_JSON:-/etc/docker/daemon.json}"
DEADLINE_S="${HOMERUN_DOCKER_WAIT_SECONDS:-60}"

log() { printf '[runsc] %s\n' "$*" >&2; }

registered() { docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; }

registered && exit 0

if ! command -v runsc >/dev/null; then
    log "installing runsc from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runsc >/dev/null
fi
RUNSC="$(command -v runsc)"

if ! probe="$(timeout 30 "$RUNSC" --platform=ptrace --network=none do true 2>&1)"; then
    log "runsc cannot run sandboxes on this host ($RUNSC --platform=ptrace do true: ${probe:-timed out})"
    exit 3
fi

log "registering $RUNSC with the engine in $DAEMON_JSON"
mkdir -p "$(dirname "$DAEMON_JSON")"
python3 - "$DAEMON_JSON" "$RUNSC" <<'EOF'
import json, os, sys

path, runsc = sys.argv[1], sys.argv[2]
config = {}
if os.path.exists(path) and os.path.getsize(path):
    with open(path) as f:
        config = json.load(f)
config.setdefault("runtimes", {})["runsc"] = {
    "path": runsc,
    "runtimeArgs": ["--platform=ptrace", "--network=none", "--oci-seccomp"],
}
with open(path + ".tmp", "w") as f:
    json.dump(config, f, indent=2)
    f.write("\n")
os.replace(path + ".tmp", path)
EOF

pid="$(pidof dockerd || true)"
if [ -z "$pid" ]; then
    log "no dockerd process on this machine to reload (a remote engine?): register runsc there by hand"
    exit 3
fi
kill -HUP $pid
deadline=$((SECONDS + DEADLINE_S))
until registered; do
    if ((SECONDS >= deadline)); then
        log "the engine did not list runsc within ${DEADLINE_S}s of its reload"
        exit 3
    fi
    sleep 0.5 # polling interval, bounded by the deadline above
done
log "runsc registered"
