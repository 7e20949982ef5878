#!/usr/bin/env bash
# A Docker engine that answers, in a Swarm: installed, started and initialised only when missing.
#
#   - no engine answers and no dockerd: apt-get install docker.io (Debian's package) and debootstrap
#     (scripts/images.sh makes the base image with it when no registry is reachable);
#   - no engine answers: start dockerd in the background (no systemd on CI machines), log to
#     $HOMERUN_DOCKERD_LOG (default /var/log/dockerd.log), with $HOMERUN_DOCKERD_ARGS if set,
#     and wait until `docker info` works;
#   - not in a Swarm: `docker swarm init --advertise-addr $HOMERUN_SWARM_ADVERTISE_ADDR`
#     (default 127.0.0.1: a single node that needs no routable address).
# Idempotent: on a ready host it only runs `docker info` twice.
set -euo pipefail

DEADLINE_S="${HOMERUN_DOCKER_WAIT_SECONDS:-60}"
LOG="${HOMERUN_DOCKERD_LOG:-/var/log/dockerd.log}"
ADVERTISE="${HOMERUN_SWARM_ADVERTISE_ADDR:-127.0.0.1}"

log() { printf '[docker] %s\n' "$*" >&2; }

engine_answers() { docker info >/dev/null 2>&1; }

install_packages() { # install_packages COMMAND=PACKAGE...: the packages whose command is missing
    local need=() pair
    for pair in "$@"; do
        command -v "${pair%%=*}" >/dev/null || need+=("${pair#*=}")
    done
    ((${#need[@]})) || return 0
    log "installing ${need[*]} from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
}

start_engine() {
    # containerd comes with docker.io; dockerd starts its own when none runs.
    log "starting dockerd (log: $LOG)"
    mkdir -p "$(dirname "$LOG")"
    # shellcheck disable=SC2086 # extra daemon flags, split into words on purpose
    nohup dockerd ${HOMERUN_DOCKERD_ARGS:-} >"$LOG" 2>&1 &
    local deadline=$((SECONDS + DEADLINE_S))
    until engine_answers; do
        if ((SECONDS >= deadline)); then
            log "dockerd did not answer within ${DEADLINE_S}s; last lines of $LOG:"
            tail -20 "$LOG" >&2
            exit 1
        fi
        sleep 0.5 # polling interval, bounded by the deadline above
    done
    log "dockerd answers"
}

swarm_state() { docker info --format '{{.Swarm.LocalNodeState}}'; }

ensure_swarm() {
    case "$(swarm_state)" in
        active) return 0 ;;
        pending | locked | error)
            log "this node's Swarm state is '$(swarm_state)': fix it by hand (docker swarm leave?)"
            exit 1
            ;;
    esac
    log "initialising a single-node Swarm (advertise $ADVERTISE)"
    docker swarm init --advertise-addr "$ADVERTISE" >/dev/null
    local deadline=$((SECONDS + DEADLINE_S))
    until [ "$(swarm_state)" = active ]; do
        ((SECONDS < deadline)) || { log "Swarm did not become active"; exit 1; }
        sleep 0.5 # polling interval, bounded by the deadline above
    done
}

if engine_answers; then
    # debootstrap is still needed when the base image must be built (scripts/images.sh).
    install_packages debootstrap=debootstrap
else
    install_packages dockerd=docker.io docker=docker.io debootstrap=debootstrap
    start_engine
fi
ensure_swarm
