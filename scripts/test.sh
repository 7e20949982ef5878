#!/usr/bin/env bash
# The whole suite: lint and types, then unit, integration and e2e tests against real
# Postgres, Redis, a Docker engine and a single-node Swarm.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/${VENV:-.venv}/bin:$PATH"
scripts/ensure-docker.sh
# gVisor registered beside runc, so the hostile suite also runs under it
# (tests/integration/plugins/test_hostile_runsc.py); the tests say so and skip it where the
# host cannot run it (exit 3), and the stack's default runtime stays runc either way.
scripts/ensure-runsc.sh || [ $? -eq 3 ]
scripts/images.sh
scripts/lint.sh
# Everything, the multi-node suite (tests/cluster, also `make test-cluster`) included.
exec pytest -p no:cacheprovider "$@"
