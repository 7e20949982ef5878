#!/usr/bin/env bash
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/${VENV:-.venv}/bin:$PATH"
ruff check .
ruff format --check . || { echo "lint: run 'ruff format .'"; exit 1; }
mypy
