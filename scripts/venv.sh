#!/usr/bin/env bash
# The project's virtualenv, rebuilt only when pyproject.toml (or an example plugin's) changes.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
stamp="$VENV/.homerun-deps"
want=$(cat pyproject.toml examples/*/pyproject.toml 2>/dev/null | sha256sum | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
    exit 0
fi
[[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
extras=()
for example in examples/*/pyproject.toml; do
    [[ -f $example ]] && extras+=(-e "$(dirname "$example")")
done
"$VENV/bin/pip" install -q -e '.[dev]' "${extras[@]}"
echo "$want" >"$stamp"
