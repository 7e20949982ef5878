#!/usr/bin/env bash
# make bench: homerun's submit -> succeeded latency and throughput for a trivial shell task,
# each as a ratio against the raw Docker SDK floor measured in the same run (bench/).
#
#   scripts/bench.sh                         40 jobs at each of concurrency 1, 2, 4
#   scripts/bench.sh --samples 100           more samples, steadier percentiles
#   scripts/bench.sh --repeat 3              3 floor/homerun pairs each: median ratio and range
#   scripts/bench.sh --floor-only            the Docker SDK floor alone
#   scripts/bench.sh --wait poll             follow jobs by polling instead of SSE
#   scripts/bench.sh --retention-jobs 0      leave out the API p99 during a retention purge
#   scripts/bench.sh --dashboard-jobs 0      leave out the /ui/jobs p95 against /v1/jobs
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
# The floor runs the shell task's image; build it (a cache hit when it exists).
if ! docker image inspect "homerun/task-shell:0.1.0" >/dev/null 2>&1; then
    scripts/images.sh task-shell
fi
exec "$PY" -m bench "$@"
