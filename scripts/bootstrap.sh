#!/usr/bin/env bash
# Everything homerun needs on a fresh Debian machine (as root), installed only when missing:
# system packages, the local Postgres and Redis the tests use, the Python venv.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
command -v curl >/dev/null || need+=(curl)
command -v redis-server >/dev/null || need+=(redis-server)
command -v psql >/dev/null || need+=(postgresql)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v dockerd >/dev/null || need+=(docker.io)
# The registry the image-pull tests (and scripts/cluster.sh) run.
command -v docker-registry >/dev/null || need+=(docker-registry)
# The browser the dashboard's tests drive (Playwright with executable_path=/usr/bin/chromium).
command -v chromium >/dev/null || need+=(chromium)
if ((${#need[@]})); then
    echo "bootstrap: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

scripts/services.sh
scripts/venv.sh
