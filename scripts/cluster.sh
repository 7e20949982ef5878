#!/usr/bin/env bash
# A multi-node Docker Swarm on this one machine, for trying and testing homerun across nodes.
#
#   scripts/cluster.sh up [N]        N engines (default 3): node1 is the manager, the rest workers
#   scripts/cluster.sh down          stop every engine and remove all that `up` made
#   scripts/cluster.sh status        the nodes, their labels and state
#   scripts/cluster.sh kill NODE     SIGKILL a node's engine and everything it runs (node loss)
#   scripts/cluster.sh start NODE    start a killed node's engine again; it rejoins by itself
#   scripts/cluster.sh images [...]  build the homerun images; serve the Hub's images to the nodes
#   scripts/cluster.sh deploy [STACK]  images, then the homerun stack (scripts/up.sh) on it
#   scripts/cluster.sh docker NODE ARGS...   the docker CLI against NODE (1..N)
#
# Each node is its own dockerd in its own network namespace, with its own data root, exec
# root, socket (/var/run/docker-<name>-nodeI.sock) and managed containerd. The namespaces hang
# off a Linux bridge in the root namespace with one veth each, on a private /24: the bridge is
# .1, node I is .(10+I). The host's own engine and its Swarm are never touched.
#
# The nodes have no route off this machine, so they cannot reach Docker Hub. The cluster
# gives them a Hub mirror instead: a registry (Debian's docker-registry binary, run as a plain
# process) on the bridge address, set as every node engine's registry mirror; the host's
# engine pushes to it on a loopback port (engines trust 127.0.0.0/8 without TLS). It holds
# only the two official images the stack's own registry needs (registry:2, haproxy:2.6),
# made from Debian's packages (images/standins/). homerun's images are built by the host's
# engine (builds need Debian's mirror) and pushed by `make up` to the registry the stack
# runs ON the Swarm, through a loopback forward to node1 (what `ssh -L` is to a remote
# manager); the nodes pull them from it. Nothing is copied between engines by hand.
#
# Node labels (the ones stack/topology.py places by, see docs/multinode.md):
#   node1          homerun.postgres=primary  homerun.redis=true  homerun.registry=true
#                  (the manager)
#   node2          homerun.postgres=replica  homerun.runner=true
#   node3..N       homerun.runner=true
#   (with N=1 node1 carries every label; with N=2 node2 is the only runner)
#
# Traffic stays on this machine: the namespaces have no default route, and the only iptables
# rules added (in the root namespace, tagged with a comment) accept forwarding between ports of
# the bridge and drop forwarding from it to anywhere else.
#
# Environment:
#   HOMERUN_CLUSTER_NAME           prefix of every object, default "hrc" (1-8 of [a-z0-9])
#   HOMERUN_CLUSTER_SUBNET         first three octets of the /24, default 10.213.0
#   HOMERUN_CLUSTER_REGISTRY_PORT  the Hub mirror's port on the bridge, default 5000
#   HOMERUN_REGISTRY_PORT          the stack's own registry port on every node, default 5000
#   HOMERUN_CLUSTER_DIR            state, data roots and registry storage,
#                                  default .homerun/cluster/<name>
#
# The state file <dir>/state.env (KEY=VALUE lines) tells tests and people where things are.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NAME="${HOMERUN_CLUSTER_NAME:-hrc}"
NET="${HOMERUN_CLUSTER_SUBNET:-10.213.0}"
REGISTRY_PORT="${HOMERUN_CLUSTER_REGISTRY_PORT:-5000}"
# The port of the registry the homerun stack runs on the Swarm (on every node's loopback).
STACK_REGISTRY_PORT="${HOMERUN_REGISTRY_PORT:-5000}"
DIR="${HOMERUN_CLUSTER_DIR:-$ROOT/.homerun/cluster/$NAME}"
# Exec roots hold containerd's sockets: keep the path short (unix socket paths max 107 bytes).
RUN="/run/homerun-cluster/$NAME"
BRIDGE="$NAME-br"
BRIDGE_IP="$NET.1"
REGISTRY="$BRIDGE_IP:$REGISTRY_PORT"
COMMENT="homerun-cluster-$NAME"
STATE="$DIR/state.env"

[[ "$NAME" =~ ^[a-z][a-z0-9]{0,7}$ ]] || { echo "HOMERUN_CLUSTER_NAME must be 1-8 of [a-z0-9], starting with a letter" >&2; exit 2; }
[[ "$NET" =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || { echo "HOMERUN_CLUSTER_SUBNET must look like 10.213.0" >&2; exit 2; }

log() { printf '[cluster %s] %s\n' "$NAME" "$*" >&2; }
die() { log "error: $*"; exit 1; }

netns() { echo "$NAME-node$1"; }
veth() { echo "$NAME-n$1"; }
sock() { echo "/var/run/docker-$NAME-node$1.sock"; }
node_ip() { echo "$NET.$((10 + $1))"; }
cgroup() { echo "homerun-$NAME-node$1"; }
ndocker() { local i="$1"; shift; docker -H "unix://$(sock "$i")" "$@"; }

# The nodes that exist now, from their namespaces (so `down` finds what a crashed `up` left).
existing_nodes() {
    ip netns list 2>/dev/null | awk '{print $1}' | sed -n "s/^$NAME-node\([0-9]\+\)$/\1/p" | sort -n
}

labels_of() {
    local i="$1" n="$2" l=()
    [ "$i" = 1 ] && l+=(homerun.postgres=primary homerun.redis=true homerun.registry=true)
    { [ "$i" = 2 ] || { [ "$n" = 1 ] && [ "$i" = 1 ]; }; } && l+=(homerun.postgres=replica)
    { [ "$i" -ge 2 ] || [ "$n" = 1 ]; } && l+=(homerun.runner=true)
    echo "${l[*]}"
}

# ---------------------------------------------------------------- network
ensure_bridge() {
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        if ip route show | grep -q "^$NET\.0/24 "; then
            die "$NET.0/24 is already routed on this host (ip route); pick HOMERUN_CLUSTER_SUBNET"
        fi
        ip link add "$BRIDGE" type bridge
        ip addr add "$BRIDGE_IP/24" dev "$BRIDGE"
        log "bridge $BRIDGE $BRIDGE_IP/24"
    fi
    ip link set "$BRIDGE" up
    # Docker sets the FORWARD policy to DROP and bridged frames pass iptables (br_netfilter):
    # allow node-to-node traffic on our bridge, and make sure none of it is routed elsewhere.
    ensure_rule FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
    ensure_rule FORWARD -i "$BRIDGE" ! -o "$BRIDGE" -j DROP
}

ensure_rule() {
    local chain="$1"; shift
    iptables -w -C "$chain" "$@" -m comment --comment "$COMMENT" 2>/dev/null \
        || iptables -w -I "$chain" 1 "$@" -m comment --comment "$COMMENT"
}

remove_rules() {
    local rule
    # Every rule carrying our comment, whatever its position; `-S` prints them re-usable.
    while read -r rule; do
        # shellcheck disable=SC2086 # the rule is a list of iptables arguments
        eval "iptables -w ${rule/-A /-D }"
    done < <(iptables -w -S FORWARD | grep -F -- "--comment $COMMENT" || true)
}

ensure_netns() {
    local i="$1" ns veth ip
    ns="$(netns "$i")"; veth="$(veth "$i")"; ip="$(node_ip "$i")"
    ip netns list | awk '{print $1}' | grep -qx "$ns" || ip netns add "$ns"
    if ! ip link show "$veth" >/dev/null 2>&1; then
        ip link add "$veth" type veth peer name "${veth}p"
        ip link set "${veth}p" netns "$ns"
        ip -n "$ns" link set "${veth}p" name eth0
        ip -n "$ns" addr add "$ip/24" dev eth0
    fi
    ip link set "$veth" master "$BRIDGE" up
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
}

# ---------------------------------------------------------------- engines
write_daemon_json() {
    local i="$1" d="$DIR/node$1"
    mkdir -p "$d/data" "$RUN/node$i"
    # A config file of our own: the host's /etc/docker/daemon.json (if any) must not apply.
    cat >"$d/daemon.json" <<EOF
{
  "data-root": "$d/data",
  "exec-root": "$RUN/node$i",
  "pidfile": "$RUN/node$i.pid",
  "hosts": ["unix://$(sock "$i")"],
  "insecure-registries": ["$REGISTRY"],
  "registry-mirrors": ["http://$REGISTRY"],
  "exec-opts": ["native.cgroupdriver=cgroupfs"],
  "cgroup-parent": "/$(cgroup "$i")",
  "labels": ["homerun.cluster=$NAME", "homerun.node=node$i"],
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m", "max-file": "2"},
  "shutdown-timeout": 5
}
EOF
}

engine_pid() {
    local pid
    pid="$(cat "$RUN/node$1.pid" 2>/dev/null)" || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

start_engine() {
    local i="$1"
    engine_pid "$i" >/dev/null && return 0
    # After a kill: no process of the old engine may linger, and its containerd pidfile must
    # go, for dockerd takes a live pid there for its containerd, and the kernel may have
    # given that pid to another process since.
    [ -z "$(node_pids "$i")" ] || kill_node "$i"
    rm -f "$RUN/node$i/containerd/containerd.pid"
    write_daemon_json "$i"
    # nsenter, not `ip netns exec`: the latter remounts /sys and hides the cgroup mounts.
    # A UTS namespace of its own gives the node its own hostname in `docker node ls`.
    # shellcheck disable=SC2016 # expanded by the inner sh, from its arguments
    setsid -f nsenter --net="/var/run/netns/$(netns "$i")" -- unshare --uts -- \
        sh -c 'hostname "$1" && exec dockerd --config-file "$2"' sh \
        "$(netns "$i")" "$DIR/node$i/daemon.json" \
        </dev/null >>"$DIR/node$i/dockerd.log" 2>&1 9>&-
}

wait_engine() {
    local i="$1" deadline=$((SECONDS + 90))
    until ndocker "$i" version >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || { tail -20 "$DIR/node$i/dockerd.log" >&2; die "node$i's engine did not answer in 90 s"; }
        sleep 0.5
    done
}

# Every process of node I: its engine, containerd, shims and proxies share the node's network
# namespace; its containers' processes are in the node's cgroup (the engine's cgroup-parent).
node_pids() {
    local i="$1" f
    ip netns pids "$(netns "$i")" 2>/dev/null || true
    for f in /sys/fs/cgroup/pids/"$(cgroup "$i")" /sys/fs/cgroup/memory/"$(cgroup "$i")"; do
        [ -d "$f" ] && find "$f" -name cgroup.procs -exec cat {} + 2>/dev/null
    done
    true
}

kill_node() {
    local i="$1" pids deadline=$((SECONDS + 30))
    while pids="$(node_pids "$i" | sort -u)" && [ -n "$pids" ]; do
        # shellcheck disable=SC2086 # a list of pids
        kill -9 $pids 2>/dev/null || true
        [ "$SECONDS" -lt "$deadline" ] || die "node$i: processes survive SIGKILL: $pids"
        sleep 0.2
    done
    rm -f "$RUN/node$i.pid"
}

# What a killed engine leaves mounted in the (shared) mount namespace: container root
# filesystems, network namespace files, shm. Innermost first.
unmount_under() {
    local prefix="$1" m
    while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done < <(awk -v p="$prefix" '$5 == p || index($5, p "/") == 1 {print $5}' /proc/self/mountinfo | sort -r)
}

remove_cgroups() {
    local i="$1" base
    for base in /sys/fs/cgroup/*/; do
        [ -d "$base$(cgroup "$i")" ] && find "$base$(cgroup "$i")" -depth -type d -exec rmdir {} + 2>/dev/null
    done
    true
}

# ---------------------------------------------------------------- the Hub mirror
# One storage directory, served twice: on the bridge address, where the nodes pull from it
# (their engines' registry mirror), and on a free loopback port, where the host's engine
# pushes to it (every engine trusts 127.0.0.0/8 without TLS, so the host's configuration
# stays untouched). A repository is the same whichever address names it.
start_registry() {
    local which="$1" addr="$2" pidfile="$DIR/registry-$1.pid"
    if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then return 0; fi
    mkdir -p "$DIR/registry/storage"
    cat >"$DIR/registry/$which.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $DIR/registry/storage
  delete:
    enabled: true
http:
  addr: $addr
EOF
    # shellcheck disable=SC2016 # expanded by the inner sh, from its arguments
    setsid -f sh -c 'echo $$ >"$1"; exec docker-registry serve "$2"' sh \
        "$pidfile" "$DIR/registry/$which.yml" </dev/null >>"$DIR/registry/$which.log" 2>&1 9>&-
    local deadline=$((SECONDS + 20))
    until curl -fsS "http://$addr/v2/" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || { tail "$DIR/registry/$which.log" >&2; die "registry did not answer on $addr"; }
        sleep 0.2
    done
    echo "$addr" >"$DIR/registry-$which.addr"
    log "registry ($which side) $addr"
}

# The loopback end of the way to the stack's registry (port 5000 of node1, published by its
# registry-proxy): where the host's engine pushes homerun's images. Engines trust 127.0.0.0/8
# without TLS; node1's address would need the host's engine reconfigured.
ensure_forward() {
    local pidfile="$DIR/forward.pid" addr
    if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        cat "$DIR/forward.addr"
        return 0
    fi
    addr="127.0.0.1:$(free_port)"
    # shellcheck disable=SC2016 # expanded by the inner sh, from its arguments
    setsid -f sh -c 'echo $$ >"$1"; exec socat "TCP-LISTEN:$2,bind=127.0.0.1,fork,reuseaddr" "TCP:$3"' sh \
        "$pidfile" "${addr#*:}" "$(node_ip 1):$STACK_REGISTRY_PORT" </dev/null >>"$DIR/forward.log" 2>&1 9>&-
    local deadline=$((SECONDS + 10))
    until [ -s "$pidfile" ] && (exec 3<>"/dev/tcp/127.0.0.1/${addr#*:}") 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || die "the forward to node1's registry port did not start"
        sleep 0.1
    done
    echo "$addr" >"$DIR/forward.addr"
    log "forward $addr -> $(node_ip 1):$STACK_REGISTRY_PORT (the stack's registry)"
    echo "$addr"
}

stop_forward() {
    local pid
    pid="$(cat "$DIR/forward.pid" 2>/dev/null)" || return 0
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    rm -f "$DIR/forward.pid" "$DIR/forward.addr"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

push_registry() { cat "$DIR/registry-push.addr"; }

ensure_registries() {
    start_registry pull "$REGISTRY"
    local addr
    addr="$(cat "$DIR/registry-push.addr" 2>/dev/null || echo "127.0.0.1:$(free_port)")"
    start_registry push "$addr"
}

stop_registries() {
    local pid which
    for which in pull push; do
        pid="$(cat "$DIR/registry-$which.pid" 2>/dev/null)" || continue
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid"
            while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
        fi
        rm -f "$DIR/registry-$which.pid"
    done
}

# ---------------------------------------------------------------- swarm
swarm_state() { ndocker "$1" info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null; }

ensure_swarm() {
    local n="$1" i token id
    if [ "$(swarm_state 1)" != active ]; then
        ndocker 1 swarm init --advertise-addr "$(node_ip 1)" --listen-addr "$(node_ip 1):2377" >/dev/null
        log "node1: swarm initialised (manager, $(node_ip 1))"
    fi
    token="$(ndocker 1 swarm join-token -q worker)"
    for ((i = 2; i <= n; i++)); do
        [ "$(swarm_state "$i")" = active ] && continue
        ndocker "$i" swarm join --token "$token" --advertise-addr "$(node_ip "$i")" \
            --listen-addr "$(node_ip "$i"):2377" "$(node_ip 1):2377" >/dev/null
        log "node$i: joined as a worker ($(node_ip "$i"))"
    done
    for ((i = 1; i <= n; i++)); do
        id="$(ndocker "$i" info --format '{{.Swarm.NodeID}}')"
        local args=() l
        for l in $(labels_of "$i" "$n"); do args+=(--label-add "$l"); done
        # The hostname is the machine's for every engine: name the nodes by a label instead.
        args+=(--label-add "homerun.cluster.node=node$i")
        ndocker 1 node update "${args[@]}" "$id" >/dev/null
    done
}

write_state() {
    local n="$1" i
    {
        echo "CLUSTER_NAME=$NAME"
        echo "CLUSTER_NODES=$n"
        echo "CLUSTER_DIR=$DIR"
        echo "CLUSTER_BRIDGE=$BRIDGE"
        echo "CLUSTER_BRIDGE_IP=$BRIDGE_IP"
        echo "CLUSTER_REGISTRY=$REGISTRY"
        echo "CLUSTER_REGISTRY_PUSH=$(push_registry)"
        echo "CLUSTER_MANAGER_HOST=unix://$(sock 1)"
        for ((i = 1; i <= n; i++)); do
            echo "NODE${i}_HOST=unix://$(sock "$i")"
            echo "NODE${i}_IP=$(node_ip "$i")"
            echo "NODE${i}_NETNS=$(netns "$i")"
            echo "NODE${i}_ID=$(ndocker "$i" info --format '{{.Swarm.NodeID}}')"
            echo "NODE${i}_LABELS=\"$(labels_of "$i" "$n")\""
        done
    } >"$STATE.tmp"
    mv "$STATE.tmp" "$STATE"
}

# ---------------------------------------------------------------- commands
# Debian's docker-registry is the registry binary (its service is not enabled: the
# policy-rc.d of such machines, or us never starting it); socat is the forward to the
# stack's registry; busybox-static makes the tiny image of the cluster's own smoke test
# (tests/cluster).
ensure_tools() {
    local need=()
    command -v docker-registry >/dev/null || need+=(docker-registry)
    command -v socat >/dev/null || need+=(socat)
    [ -x /bin/busybox ] || need+=(busybox-static)
    ((${#need[@]})) || return 0
    log "installing ${need[*]} from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
}

cmd_up() {
    local n="${1:-3}" i start=$SECONDS
    [[ "$n" =~ ^[1-9][0-9]?$ ]] || die "up N: N is 1..99"
    mkdir -p "$DIR" "$RUN"
    ensure_tools
    ensure_bridge
    ensure_registries
    for ((i = 1; i <= n; i++)); do ensure_netns "$i"; start_engine "$i"; done
    for ((i = 1; i <= n; i++)); do wait_engine "$i"; done
    ensure_swarm "$n"
    write_state "$n"
    log "up: $n node(s) in $((SECONDS - start)) s; state in $STATE"
}

cmd_down() {
    local i start=$SECONDS
    local dirs=("$DIR"/node*)
    # The nodes with a namespace or a data directory: what a crashed `up` left is found too.
    for i in $( (existing_nodes; printf '%s\n' "${dirs[@]##*/node}") | grep -x '[0-9]\+' | sort -un); do
        kill_node "$i"
        unmount_under "$RUN/node$i"
        unmount_under "$DIR/node$i"
        ip netns del "$(netns "$i")" 2>/dev/null || true
        ip link del "$(veth "$i")" 2>/dev/null || true
        rm -f "$(sock "$i")"
        remove_cgroups "$i"
    done
    stop_forward
    stop_registries
    forget_stacks
    ip link del "$BRIDGE" 2>/dev/null || true
    remove_rules
    unmount_under "$DIR"
    unmount_under "$RUN"
    rm -rf --one-file-system "$DIR" "$RUN"
    rm -f "/run/homerun-cluster/$NAME.lock"
    rmdir /run/homerun-cluster "$(dirname "$DIR")" 2>/dev/null || true
    log "down in $((SECONDS - start)) s"
}

cmd_status() {
    [ -s "$STATE" ] || { log "no cluster (no $STATE)"; return 1; }
    cat "$STATE"
    ndocker 1 node ls --format '{{.ID}} {{.Status}} {{.Availability}} {{.ManagerStatus}}' || true
    local i
    for i in $(existing_nodes); do
        printf 'node%s engine: %s\n' "$i" "$(engine_pid "$i" >/dev/null && echo running || echo stopped)"
    done
}

mirror_has() {
    curl -fs -o /dev/null -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
        "http://$(push_registry)/v2/$1/manifests/$2"
}

mirror_push() {
    local push
    push="$(push_registry)"
    docker push -q "$push/$1" >/dev/null
    docker rmi "$push/$1" >/dev/null
    log "Hub mirror: ${1#library/} (nodes pull it as ${1#library/})"
}

cmd_images() {
    [ -s "$STATE" ] || die "no cluster: run 'scripts/cluster.sh up' first"
    local tag push
    tag="${HOMERUN_IMAGE_TAG:-$("$ROOT/.venv/bin/python" -c 'import tomllib; print(tomllib.load(open("'"$ROOT"'/pyproject.toml", "rb"))["project"]["version"])')}"
    push="$(push_registry)"
    # Built by the host's engine, where image builds reach Debian's mirror (the nodes have no
    # route off this machine); a string of cache hits when `make images` already ran.
    [ "${HOMERUN_SKIP_IMAGES:-0}" = 1 ] || HOMERUN_IMAGE_TAG="$tag" HOMERUN_NO_PULL=1 "$ROOT/scripts/images.sh" "$@"
    # The official images the stack's registry runs on, as the nodes' Hub mirror serves them
    # (library/ is the Hub's namespace of official images). Pushed once: like the Hub's, they
    # do not change under a deployed stack. The extra tags exist only for the push: the host
    # keeps its images as they were.
    if ! mirror_has library/registry 2; then
        local out
        out="$(docker build -f "$ROOT/images/standins/registry.Dockerfile" \
            -t "$push/library/registry:2" "$ROOT/images/standins" 2>&1)" || { echo "$out" >&2; die "building the registry:2 stand-in failed"; }
        mirror_push library/registry:2
    fi
    if ! mirror_has library/haproxy 2.6; then
        docker tag "homerun/edge:$tag" "$push/library/haproxy:2.6" # Debian's HAProxy 2.6
        mirror_push library/haproxy:2.6
    fi
}

# The homerun stack on the cluster, deployed by `make up`'s own script pointed at the manager.
# With no registry configured on a multi-node Swarm it runs one on the Swarm and pushes the
# images there, through the forward to node1. Two settings only this one-machine cluster
# needs: the runner's Docker socket named after its node (a Swarm mount template; the nodes
# share the host's filesystem), and the API reached on node1's address. dnsrr and host-mode
# ports are chosen by up.sh's own preflight (no IPVS).
cmd_deploy() {
    [ -s "$STATE" ] || die "no cluster: run 'scripts/cluster.sh up' first"
    local stack="${1:-$NAME}" port="${HOMERUN_API_PORT:-8000}" forward
    # The host's engine holds the images it built (read before DOCKER_HOST names node1).
    local builder="${DOCKER_HOST:-unix:///var/run/docker.sock}"
    cmd_images
    forward="$(ensure_forward)"
    echo "$stack" >>"$DIR/stacks"
    local socket='/var/run/docker-{{.Node.Hostname}}.sock'
    DOCKER_HOST="unix://$(sock 1)" HOMERUN_STACK="$stack" HOMERUN_API_PORT="$port" \
        HOMERUN_REGISTRY_PUSH="$forward" HOMERUN_PUSH_DOCKER_HOST="$builder" \
        HOMERUN_SKIP_IMAGES=1 \
        HOMERUN_API_URL="http://$(node_ip 1):$port" HOMERUN_ENV_FILE="$DIR/$stack.env" \
        HOMERUN_COMPOSE_ARGS="--placement-labels --docker-socket $socket ${HOMERUN_COMPOSE_ARGS:-}" \
        "$ROOT/scripts/up.sh"
    log "stack $stack: the API answers on port $port of every node ($(node_ip 1) ...); URL and token in $DIR/$stack.env"
}

# What a stack deployed here left on the host: its secrets and its runners' work directory.
forget_stacks() {
    local stack
    [ -s "$DIR/stacks" ] || return 0
    while read -r stack; do
        [[ "$stack" =~ ^[a-z0-9][a-z0-9_-]*$ ]] || continue
        rm -rf "$ROOT/.homerun/stacks/$stack" "/var/lib/homerun/work/$stack"
    done < <(sort -u "$DIR/stacks")
}

lock() {
    mkdir -p /run/homerun-cluster
    exec 9>"/run/homerun-cluster/$NAME.lock"
    flock -w 300 9 || die "another cluster.sh holds /run/homerun-cluster/$NAME.lock"
}

main() {
    local cmd="${1:-}"
    [ $# -gt 0 ] && shift
    case "$cmd" in
        up) lock; cmd_up "$@" ;;
        down) lock; cmd_down ;;
        status) cmd_status ;;
        kill) [ $# = 1 ] || die "kill NODE"; lock; kill_node "$1"; log "node$1 killed" ;;
        start) [ $# = 1 ] || die "start NODE"; lock; start_engine "$1"; wait_engine "$1"; log "node$1 started" ;;
        images) lock; cmd_images "$@" ;;
        deploy) lock; cmd_deploy "$@" ;;
        docker) [ $# -ge 1 ] || die "docker NODE ARGS..."; local i="$1"; shift; ndocker "$i" "$@" ;;
        *) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
}

main "$@"
