#!/usr/bin/env bash
# Push homerun's images (the ones scripts/images.sh builds, stack.topology.IMAGE_NAMES) to a
# registry, where every node of a multi-node Swarm pulls them from.
#
#   scripts/push-images.sh REGISTRY     e.g. 127.0.0.1:5000 or registry.example:5000
#
# The images are the local homerun/<name>:<tag>; each is tagged <REGISTRY>/homerun/<name>:<tag>
# for the push only, so the engine keeps its tags as they were. A layer the registry has is
# not sent again: a second push of unchanged images is quick.
# Environment: HOMERUN_IMAGE_TAG (default: the project version), DOCKER_HOST (the engine
# that holds the images).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
REGISTRY="${1:?usage: scripts/push-images.sh REGISTRY}"
REGISTRY="${REGISTRY%/}"
TAG="${HOMERUN_IMAGE_TAG:-$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')}"

log() { printf '[push] %s\n' "$*" >&2; }

for name in $("$PY" -c 'from stack.topology import IMAGE_NAMES; print(*IMAGE_NAMES)'); do
    start=$SECONDS
    docker tag "homerun/$name:$TAG" "$REGISTRY/homerun/$name:$TAG"
    if ! docker push -q "$REGISTRY/homerun/$name:$TAG" >/dev/null; then
        docker rmi "$REGISTRY/homerun/$name:$TAG" >/dev/null || true
        log "FAILED: $REGISTRY/homerun/$name:$TAG"
        exit 1
    fi
    docker rmi "$REGISTRY/homerun/$name:$TAG" >/dev/null
    log "$REGISTRY/homerun/$name:$TAG ($((SECONDS - start)) s)"
done
