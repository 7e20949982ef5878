#!/usr/bin/env bash
# Build every homerun image: the application, Postgres, Redis and the built-in task types.
#
#   scripts/images.sh            build all images
#   scripts/images.sh task-shell build only the named ones (base, wheels, app, postgres, redis,
#                                edge, task-shell, task-python, egress-proxy)
#
# The Dockerfiles in images/ start FROM the official debian:bookworm-slim and install Python
# packages with `pip install --no-index` from wheels built here on the host, so they build the
# same way on a normal host and on one with no registry and no PyPI inside containers:
#   - if debian:bookworm-slim is missing and cannot be pulled, it is made with debootstrap
#     (variant minbase) and `docker import`, and the rootfs tarball is cached;
#   - the project's wheels are built on the host into images/.wheels (gitignored).
# Everything is idempotent: a second run with nothing changed is a string of build-cache hits.
#
# Environment:
#   HOMERUN_IMAGE_PREFIX  repository prefix, default "homerun" (e.g. registry.local:5000/homerun)
#   HOMERUN_IMAGE_TAG     tag, default the project version from pyproject.toml
#   HOMERUN_CACHE_DIR     where the debootstrap tarball is cached, default .homerun/cache
#   DEBIAN_MIRROR         mirror for debootstrap, default http://deb.debian.org/debian
#   HOMERUN_NO_PULL=1     never try `docker pull` for the base image (skips a slow time-out)
#   HOMERUN_NO_CACHE=1    build every layer anew (`docker build --no-cache`): picks up Debian's
#                         security updates, which cached apt layers never see
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PY="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
PREFIX="${HOMERUN_IMAGE_PREFIX:-homerun}"
TAG="${HOMERUN_IMAGE_TAG:-$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')}"
CACHE_DIR="${HOMERUN_CACHE_DIR:-$ROOT/.homerun/cache}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
BASE_IMAGE="debian:bookworm-slim"
WHEELS="$ROOT/images/.wheels"

log() { printf '[images] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- base image
ensure_base() {
    if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        return
    fi
    if [ "${HOMERUN_NO_PULL:-0}" != 1 ] && timeout 60 docker pull -q "$BASE_IMAGE" >/dev/null 2>&1; then
        log "pulled $BASE_IMAGE"
        return
    fi
    local tarball="$CACHE_DIR/debian-bookworm-minbase.tar"
    if [ ! -s "$tarball" ]; then
        command -v debootstrap >/dev/null || {
            log "debootstrap missing: installing it"
            apt-get install -y -q debootstrap >/dev/null
        }
        mkdir -p "$CACHE_DIR"
        local rootfs
        rootfs="$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")"
        # shellcheck disable=SC2064 # expand now: the trap must remove this very directory
        trap "rm -rf '$rootfs'" EXIT
        log "no $BASE_IMAGE and no registry: debootstrap --variant=minbase bookworm (about 30 s)"
        debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$CACHE_DIR/debootstrap.log" 2>&1 || {
            tail -20 "$CACHE_DIR/debootstrap.log" >&2
            exit 1
        }
        slim_rootfs "$rootfs"
        tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" .
        mv "$tarball.tmp" "$tarball"
        rm -rf "$rootfs"
        trap - EXIT
    fi
    log "docker import $tarball as $BASE_IMAGE"
    # The same metadata the official image carries, so FROM behaves the same.
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' \
        "$tarball" "$BASE_IMAGE" >/dev/null
}

# Make the debootstrap tree look like the official slim image: its apt sources (with updates
# and security), its dpkg path excludes (no docs/man/locales), and no caches.
slim_rootfs() {
    local r="$1"
    rm -f "$r/etc/apt/sources.list"
    cat >"$r/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${MIRROR%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    mkdir -p "$r/etc/dpkg/dpkg.cfg.d"
    cat >"$r/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
EOF
    cat >"$r/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    echo 'Acquire::Languages "none";' >"$r/etc/apt/apt.conf.d/docker-no-languages"
    rm -rf "$r/var/cache/apt/archives/"*.deb "$r/var/lib/apt/lists/"* "$r/usr/share/doc/"* \
        "$r/usr/share/man/"* "$r/usr/share/locale/"* "$r/var/log/"*.log
}

# ---------------------------------------------------------------- wheels
# The project wheel and its runtime dependencies, built on the host. SOURCE_DATE_EPOCH makes
# the project wheel byte-identical across builds of the same source, so the image layer that
# installs it stays cached. Dependency wheels are only rebuilt when pyproject.toml or the
# image's Python changes; images/wheelhouse.py adds what the image's Python needs beyond the
# host's (markers such as python_full_version < "3.11.3").
build_wheels() {
    mkdir -p "$WHEELS/deps" "$WHEELS/app"
    local pyimage env stamp want
    pyimage="$(docker build -q --target python -f images/app.Dockerfile images 2>/dev/null)"
    env="$(docker run --rm -i --network none "$pyimage" python3 - --env <images/wheelhouse.py)"
    stamp="$WHEELS/.deps-stamp"
    want="$( (cat pyproject.toml; echo "$env") | sha256sum | cut -d' ' -f1)"
    local tmp had_build=0
    tmp="$(mktemp -d)"
    [ -e build ] && had_build=1
    SOURCE_DATE_EPOCH=315532800 "$PY" -m pip wheel -q --no-deps . -w "$tmp" \
        >"$WHEELS/pip.log" 2>&1 || {
        tail -30 "$WHEELS/pip.log" >&2
        exit 1
    }
    # setuptools builds in the source tree; leave it as it was.
    [ "$had_build" = 1 ] || rm -rf build
    local new
    new="$(ls "$tmp"/homerun-*.whl)"
    # Only touch the build context when the wheel really changed.
    if ! cmp -s "$new" "$WHEELS/app/$(basename "$new")"; then
        rm -f "$WHEELS/app/"*.whl
        cp "$new" "$WHEELS/app/"
        log "project wheel updated"
    fi
    rm -rf "$tmp"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        log "building dependency wheels (pyproject.toml or the image's Python changed)"
        rm -f "$WHEELS/deps/"*.whl
        "$PY" -m pip wheel -q "$WHEELS/app/"*.whl -w "$WHEELS/deps" >"$WHEELS/pip.log" 2>&1 || {
            tail -30 "$WHEELS/pip.log" >&2
            exit 1
        }
        rm -f "$WHEELS/deps/homerun-"*.whl
        "$PY" images/wheelhouse.py "$env" "$WHEELS/deps" "$WHEELS/app"
        echo "$want" >"$stamp"
    fi
}

# ---------------------------------------------------------------- the egress gate
# The egress proxy runs core/egressgate.py (and core/egress.py, its matching) as Squid
# helpers: copied into the build context, as the wheels are, so the image carries exactly
# this checkout's code without the project's dependencies.
stage_gate() {
    local dir="$ROOT/images/.gate/core"
    mkdir -p "$dir"
    : >"$dir/__init__.py.new"
    for f in egress.py egressgate.py; do
        cmp -s "$ROOT/core/$f" "$dir/$f" || cp "$ROOT/core/$f" "$dir/$f"
    done
    cmp -s "$dir/__init__.py.new" "$dir/__init__.py" || mv "$dir/__init__.py.new" "$dir/__init__.py"
    rm -f "$dir/__init__.py.new"
}

# ---------------------------------------------------------------- images
build() {
    local name="$1" context="$2"
    local start=$SECONDS out
    out="$(mktemp)"
    local flags=()
    [ "${HOMERUN_NO_CACHE:-0}" != 1 ] || flags+=(--no-cache)
    if ! docker build "${flags[@]}" -f "images/$name.Dockerfile" -t "$PREFIX/$name:$TAG" \
        "$context" >"$out" 2>&1; then
        tail -40 "$out" >&2
        rm -f "$out"
        log "FAILED: $PREFIX/$name:$TAG"
        exit 1
    fi
    local cached steps
    steps="$(grep '^Step ' "$out" | grep -vc ' : FROM ' || true)"
    cached="$(grep -c 'Using cache' "$out" || true)"
    rm -f "$out"
    log "$PREFIX/$name:$TAG ($((SECONDS - start)) s, $cached/$steps steps cached)"
}

# `make images` on a fresh host: an engine first.
docker info >/dev/null 2>&1 || "$ROOT/scripts/ensure-docker.sh"

ALL=(base task-shell task-python wheels app postgres redis edge egress-proxy)
want=("$@")
[ ${#want[@]} -gt 0 ] || want=("${ALL[@]}")

for target in "${want[@]}"; do
    case "$target" in
        base) ensure_base ;;
        wheels) build_wheels ;;
        app) ensure_base; [ -d "$WHEELS/app" ] || build_wheels; build app images ;;
        egress-proxy) ensure_base; stage_gate; build "$target" images ;;
        postgres | redis | edge | task-shell | task-python) ensure_base; build "$target" images ;;
        *) log "unknown image: $target (known: ${ALL[*]})"; exit 2 ;;
    esac
done
