#!/usr/bin/env bash
# The multi-node suite: a Swarm of extra Docker engines in network namespaces on this
# machine, a registry, the stack placed by node labels, and nodes killed under load.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/${VENV:-.venv}/bin:$PATH"
scripts/ensure-docker.sh
scripts/images.sh
exec pytest -p no:cacheprovider -m cluster tests/cluster "$@"
