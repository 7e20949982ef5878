#!/usr/bin/env bash
# make up: a Docker engine in a Swarm, the images, the stack deployed and healthy, one sample
# job run, and HOMERUN_URL / HOMERUN_TOKEN written for the CLI. Run again, it changes nothing.
#
# Environment:
#   HOMERUN_STACK         stack name, default homerun (every object is named <stack>_...)
#   HOMERUN_API_PORT      the published API port, default 8000
#   HOMERUN_REGISTRY      registry host[:port] the images come from, default none: local images
#                         on a one-node Swarm, the stack's own registry on a multi-node one
#   HOMERUN_RUN_REGISTRY  1: run a registry on the Swarm (the stack's `registry` service) and
#                         push the images there; 0: never; default auto: when HOMERUN_REGISTRY
#                         is empty and the Swarm has more than one node
#   HOMERUN_REGISTRY_PORT its port on every node's loopback, default 5000
#   HOMERUN_ENCRYPT_NETWORKS  1: IPsec on the stack's overlay networks; 0: none; default auto:
#                         what the running stack has, else 1 on a Swarm of several nodes
#                         whose kernel can (scripts/overlay-encryption.sh)
#   HOMERUN_REGISTRY_PUSH where this machine pushes to it, default 127.0.0.1:<that port>
#                         (a forward when this machine is not a node, see scripts/cluster.sh)
#   HOMERUN_PUSH_DOCKER_HOST  the engine holding the built images, default DOCKER_HOST
#   HOMERUN_SKIP_PUSH=1   do not push the images to HOMERUN_REGISTRY (they are there already)
#   HOMERUN_ENV_FILE      where URL and token go, default .homerun/env for the default stack,
#                         .homerun/stacks/<stack>/env for any other
#   HOMERUN_UP_TIMEOUT    seconds to wait for a healthy stack, default the slowest first
#                         start of any service (stack.model.converge_timeout_s)
#   HOMERUN_REGISTRY_USERNAME, HOMERUN_REGISTRY_PASSWORD  credentials for HOMERUN_REGISTRY:
#                         `docker login` here, and the nodes get them with each service
#                         (--with-registry-auth; Pulumi: registryUsername/registryPassword)
#   HOMERUN_ROTATE        a secret key whose new value is deployed on purpose (make rotate)
#   HOMERUN_COMPOSE_ARGS  extra arguments for `python -m stack.compose` (e.g. --api-replicas 3)
#   HOMERUN_TASK_RUNTIME  the OCI runtime of task containers: runc (default), runsc (gVisor,
#                         installed and registered with this engine by scripts/ensure-runsc.sh;
#                         up stops if it cannot run here) or auto (runsc where registered).
#                         With Pulumi, the taskRuntime config key says it instead
#   HOMERUN_SKIP_IMAGES=1 do not run scripts/images.sh (the caller just did)
#   HOMERUN_SKIP_SAMPLE=1 do not run the sample job
# With the Pulumi CLI installed and logged in (`pulumi whoami` works) and a Pulumi stack
# selected, the deployment is `pulumi up`; otherwise `docker stack deploy`, with the same
# topology (stack/topology.py) rendered to a compose file.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
STACK="${HOMERUN_STACK:-homerun}"
PORT="${HOMERUN_API_PORT:-8000}"
STATE=".homerun/stacks/$STACK"
if [ "$STACK" = homerun ]; then
    ENV_FILE="${HOMERUN_ENV_FILE:-.homerun/env}"
else
    ENV_FILE="${HOMERUN_ENV_FILE:-$STATE/env}"
fi
TIMEOUT_ARGS=()
[ -z "${HOMERUN_UP_TIMEOUT:-}" ] || TIMEOUT_ARGS=(--timeout "$HOMERUN_UP_TIMEOUT")
SECRETS_DIR="$STATE/secrets"

log() { printf '[up] %s\n' "$*" >&2; }

login_own_registry() { # login_own_registry DOCKER_HOST ADDRESS: docker login to the stack's registry
    local user out
    user="$("$PY" -c 'from stack.topology import REGISTRY_USER; print(REGISTRY_USER)')"
    if ! out="$(DOCKER_HOST="$1" docker login --username "$user" --password-stdin "$2" \
        <"$SECRETS_DIR/registry-password" 2>&1)"; then
        log "docker login $2 as $user failed: $out"
        exit 1
    fi
}

mkdir -p "$STATE"
[ -f .homerun/.gitignore ] || printf '# local state of make up: secrets, env, caches\n*\n' >.homerun/.gitignore

scripts/ensure-docker.sh
[ "${HOMERUN_SKIP_IMAGES:-0}" = 1 ] || scripts/images.sh

TASK_RUNTIME="${HOMERUN_TASK_RUNTIME:-runc}"
case "$TASK_RUNTIME" in
    runc | auto) ;;
    runsc)
        # Asked for the stronger sandbox: never deploy the weaker one instead.
        scripts/ensure-runsc.sh || {
            log "HOMERUN_TASK_RUNTIME=runsc, but gVisor cannot be registered on this engine (above)"
            exit 1
        }
        ;;
    *)
        log "HOMERUN_TASK_RUNTIME must be runc, runsc or auto, not '$TASK_RUNTIME'"
        exit 2
        ;;
esac

use_pulumi() {
    command -v pulumi >/dev/null && [ -f Pulumi.yaml ] && pulumi whoami >/dev/null 2>&1 \
        && pulumi stack --show-name >/dev/null 2>&1
}

# shellcheck disable=SC2206 # word splitting of the extra arguments is the point
compose_args=(--stack "$STACK" --port "$PORT" --auto-modes --pin-images --task-runtime "$TASK_RUNTIME" ${HOMERUN_COMPOSE_ARGS:-})
[ -z "${HOMERUN_REGISTRY:-}" ] || compose_args+=(--registry "$HOMERUN_REGISTRY")
# Credentials reach the nodes with the services (docker stack deploy --with-registry-auth
# sends this machine's login for the registry along).
auth_args=()
if [ -n "${HOMERUN_REGISTRY:-}" ]; then
    auth_args=(--with-registry-auth)
    if [ -n "${HOMERUN_REGISTRY_USERNAME:-}" ]; then
        printf '%s' "${HOMERUN_REGISTRY_PASSWORD:-}" \
            | docker login --username "$HOMERUN_REGISTRY_USERNAME" --password-stdin "$HOMERUN_REGISTRY" >/dev/null
    fi
fi

# Every node pulls the images, so a Swarm of several nodes needs a registry: with none
# configured, the stack runs its own (stack/topology.py, `registry` and `registry-proxy`).
# How many nodes the Swarm has: a registry and encrypted overlays are for several.
NODES="$(docker node ls -q 2>/dev/null | wc -l)"
RUN_REGISTRY="${HOMERUN_RUN_REGISTRY:-auto}"
REGISTRY_PORT="${HOMERUN_REGISTRY_PORT:-5000}"
if [ "$RUN_REGISTRY" = auto ]; then
    RUN_REGISTRY=0
    if [ -z "${HOMERUN_REGISTRY:-}" ] && [ "$NODES" -gt 1 ]; then
        RUN_REGISTRY=1
        log "a Swarm of several nodes and no HOMERUN_REGISTRY: running a registry on the Swarm"
    fi
fi
case "$RUN_REGISTRY" in
    0) ;;
    1)
        [ -z "${HOMERUN_REGISTRY:-}" ] || { log "HOMERUN_REGISTRY and HOMERUN_RUN_REGISTRY=1: choose one"; exit 2; }
        compose_args+=(--run-registry --registry-port "$REGISTRY_PORT")
        ;;
    *) log "HOMERUN_RUN_REGISTRY must be 0, 1 or auto, not $RUN_REGISTRY"; exit 2 ;;
esac

# Overlay traffic between nodes crosses their network: on a Swarm of several nodes it is
# encrypted (IPsec) where the kernel can (scripts/overlay-encryption.sh; an "encrypted"
# network on a kernel without ESP drops every packet between nodes). A running stack keeps
# what it has, since changing it replaces every network (docs/operations.md).
ENCRYPT="${HOMERUN_ENCRYPT_NETWORKS:-auto}"
if [ "$ENCRYPT" = auto ]; then
    running="$("$PY" scripts/stackctl.py encryption "$STACK")"
    case "$running" in
        true) ENCRYPT=1 ;;
        false)
            ENCRYPT=0
            [ "$NODES" -le 1 ] \
                || log "stack $STACK runs on unencrypted networks and keeps them; to encrypt: make down, then make up"
            ;;
        *)
            ENCRYPT=0
            if [ "$NODES" -gt 1 ]; then
                if why="$(scripts/overlay-encryption.sh 2>&1)"; then
                    ENCRYPT=1
                    log "a Swarm of several nodes: the overlay networks are encrypted (IPsec)"
                else
                    log "a Swarm of several nodes, but the overlays stay unencrypted: $why"
                fi
            fi
            ;;
    esac
fi
case "$ENCRYPT" in
    0) ;;
    1)
        # Asked for: never deploy networks that would drop every packet between nodes.
        scripts/overlay-encryption.sh || {
            log "HOMERUN_ENCRYPT_NETWORKS=1, but this kernel cannot encrypt overlays (above)"
            exit 1
        }
        compose_args+=(--encrypt-networks)
        ;;
    *) log "HOMERUN_ENCRYPT_NETWORKS must be 0, 1 or auto, not $ENCRYPT"; exit 2 ;;
esac

# The runner's work directory is bind-mounted from the same host path (stack/topology.py
# WORK_DIR); a bind mount's source must exist on the node before the task starts.
mkdir -p /var/lib/homerun/work
# Tasks' secret files live on a tmpfs the runner bind-mounts from the same host path
# (stack/topology.py SECRETS_DIR; runners/secretfiles.py refuses a directory on disk).
# Where /run is no tmpfs of its own, the directory gets one.
mkdir -p /run/homerun-secrets
if [ "$(stat -f -c %T /run/homerun-secrets)" != tmpfs ]; then
    mount -t tmpfs -o size=16m,mode=0700 homerun-secrets /run/homerun-secrets
fi

if use_pulumi; then
    # The Pulumi stack's own config (Pulumi.yaml documents every key) decides names and port;
    # the outputs say what it deployed.
    log "deploying with pulumi up (Pulumi stack $(pulumi stack --show-name))"
    if [ "$RUN_REGISTRY" = 1 ] && [ "$(pulumi config get runRegistry 2>/dev/null)" != true ] \
        && [ -z "$(pulumi config get registry 2>/dev/null)" ]; then
        # The Pulumi stack's config decides, not the environment.
        log "a Swarm of several nodes needs a registry: pulumi config set runRegistry true (or registry)"
    fi
    if [ "$ENCRYPT" = 1 ] && [ "$(pulumi config get encryptNetworks 2>/dev/null)" != true ]; then
        # Pulumi's config is the record of what was deployed: it is never changed from here.
        log "a Swarm of several nodes: pulumi config set encryptNetworks true encrypts the overlays"
    fi
    pulumi up --yes --skip-preview
    STACK="$(pulumi stack output stack)"
    PORT="$(pulumi stack output apiUrl | sed 's/.*://')"
    STATE=".homerun/stacks/$STACK"
    mkdir -p "$STATE"
    echo pulumi >"$STATE/deployer"
else
    # A stack already running with secrets this machine does not have (a lost .homerun/, a
    # second checkout) stops here, before anything is generated or changed.
    "$PY" scripts/stackctl.py preflight "$STACK" "$SECRETS_DIR" ${HOMERUN_ROTATE:+--rotate "$HOMERUN_ROTATE"}
    # The preflight (stack/modes.py) picks dnsrr + host-mode ports where the kernel has no
    # IPVS, and prints what it chose.
    "$PY" -m stack.compose "${compose_args[@]}" -o "$STATE/compose.yml"
    echo compose >"$STATE/deployer"
    resolve=never # local images: there is no registry digest to pin
    [ -z "${HOMERUN_REGISTRY:-}" ] && [ "$RUN_REGISTRY" = 0 ] || resolve=always
    if [ -n "${HOMERUN_REGISTRY:-}" ] && [ "${HOMERUN_SKIP_PUSH:-0}" != 1 ]; then
        # Your registry: the images built here go there first (`docker login` beforehand if
        # it wants one).
        DOCKER_HOST="${HOMERUN_PUSH_DOCKER_HOST:-${DOCKER_HOST:-}}" scripts/push-images.sh "$HOMERUN_REGISTRY"
    fi
    if [ "$RUN_REGISTRY" = 1 ]; then
        # The registry first (rendered exactly as in the whole stack, so the second deploy
        # leaves it be), then the images into it, then everything that pulls them.
        "$PY" -m stack.compose "${compose_args[@]}" --registry-only -o "$STATE/registry.yml"
        log "docker stack deploy $STACK: its registry"
        docker stack deploy --resolve-image "$resolve" ${auth_args[@]+"${auth_args[@]}"} -c "$STATE/registry.yml" "$STACK" \
            | { grep -v '^Updating service' || true; } | sed 's/^/[up]   /' >&2
        "$PY" scripts/stackctl.py wait "$STACK" ${TIMEOUT_ARGS[@]+"${TIMEOUT_ARGS[@]}"}
        push="${HOMERUN_REGISTRY_PUSH:-127.0.0.1:$REGISTRY_PORT}"
        deadline=$((SECONDS + 60))
        # 401: it answers, and wants the password (stack/topology.py: htpasswd).
        until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$push/v2/")" = 401 ]; do
            [ "$SECONDS" -lt "$deadline" ] || { log "the registry does not answer at $push"; exit 1; }
            sleep 0.5
        done
        # Logged in as its one user, where the images are pushed from and where the
        # services are deployed from (--with-registry-auth hands the nodes that login).
        login_own_registry "${HOMERUN_PUSH_DOCKER_HOST:-${DOCKER_HOST:-}}" "$push"
        login_own_registry "${DOCKER_HOST:-}" "127.0.0.1:$REGISTRY_PORT"
        auth_args=(--with-registry-auth)
        DOCKER_HOST="${HOMERUN_PUSH_DOCKER_HOST:-${DOCKER_HOST:-}}" scripts/push-images.sh "$push"
    fi
    log "docker stack deploy $STACK"
    # Docker says "Updating service" for every existing service even when its spec is
    # unchanged (and then nothing restarts); only creations and removals are news.
    docker stack deploy --prune --resolve-image "$resolve" ${auth_args[@]+"${auth_args[@]}"} -c "$STATE/compose.yml" "$STACK" \
        | { grep -v '^Updating service' || true; } | sed 's/^/[up]   /' >&2
fi

# An unchanged spec is not redeployed, so roll out images rebuilt under the same tag.
"$PY" scripts/stackctl.py refresh "$STACK"
"$PY" scripts/stackctl.py wait "$STACK" ${TIMEOUT_ARGS[@]+"${TIMEOUT_ARGS[@]}"}
# Secrets and configs the services moved off (a rotation, a changed config) go once the
# update is through; Swarm keeps them otherwise.
"$PY" scripts/stackctl.py prune "$STACK"

# HOMERUN_API_URL: where this machine reaches the API when not on its own loopback (the
# test cluster of scripts/cluster.sh, whose nodes have addresses of their own).
URL="${HOMERUN_API_URL:-http://127.0.0.1:$PORT}"
TOKEN_FILE="$STATE/secrets/admin-token"
if [ "${HOMERUN_SKIP_SAMPLE:-0}" != 1 ]; then
    "$PY" scripts/stackctl.py sample-job "$URL" "$TOKEN_FILE"
fi

new_env="$(printf 'HOMERUN_URL=%s\nHOMERUN_TOKEN=%s\n' "$URL" "$(cat "$TOKEN_FILE")")"
if [ "$(cat "$ENV_FILE" 2>/dev/null)" != "$new_env" ]; then
    (umask 077 && printf '%s\n' "$new_env" >"$ENV_FILE")
    log "wrote HOMERUN_URL and HOMERUN_TOKEN to $ENV_FILE"
fi
# Which runtime the runners' tasks run under, and why (runners/runtimes.py decides the same
# way on each node; their logs say it too).
if docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; then
    case "$TASK_RUNTIME" in
        runc) log "task runtime: runc (HOMERUN_TASK_RUNTIME=runc; this engine also has runsc:" \
            "HOMERUN_TASK_RUNTIME=runsc or auto would use gVisor)" ;;
        *) log "task runtime: runsc, gVisor (HOMERUN_TASK_RUNTIME=$TASK_RUNTIME, registered here)" ;;
    esac
else
    case "$TASK_RUNTIME" in
        auto) log "task runtime: runc (HOMERUN_TASK_RUNTIME=auto and this engine has no runsc;" \
            "scripts/ensure-runsc.sh registers it)" ;;
        *) log "task runtime: runc (HOMERUN_TASK_RUNTIME=runc; this engine has no runsc registered:" \
            "docs/operations.md, Task runtime)" ;;
    esac
fi
log "homerun is up: API at $URL (stack $STACK; token in $ENV_FILE)"
echo "$URL"
