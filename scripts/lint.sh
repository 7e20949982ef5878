#!/usr/bin/env bash
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check .
ruff format --check . || { echo "lint: run 'ruff format .'"; exit 1; }
mypy
