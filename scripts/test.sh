#!/usr/bin/env bash
# The whole suite: lint and types, then unit, integration and e2e tests against real
# Postgres, Redis, a Docker engine and a single-node Swarm.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/${VENV:-.venv}/bin:$PATH"
scripts/ensure-docker.sh
scripts/images.sh
scripts/lint.sh
# Everything, the multi-node suite (tests/cluster, also `make test-cluster`) included.
exec pytest -p no:cacheprovider "$@"
