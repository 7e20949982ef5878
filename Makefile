# homerun: every entry point a person or CI uses. Each target calls one script in scripts/.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: up down rotate test test-cluster cluster cluster-down lint images bench venv deps

## up: install what is missing, build images, deploy the stack, run a sample job
up: deps
	scripts/up.sh

## rotate: a new value for one secret, rolled out with no failed request (SECRET=admin-token)
rotate: venv
	SECRET=$(SECRET) VALUE_FILE=$(VALUE_FILE) PG_ALTERED=$(PG_ALTERED) scripts/rotate.sh

## down: remove the stack (PURGE=1 also removes its volumes)
down:
	scripts/down.sh

## test: the whole suite — lint, types, unit, integration, e2e on a real Swarm, multi-node
test: deps
	scripts/test.sh

## test-cluster: only the multi-node suite (part of make test): node loss on a 3-node Swarm
test-cluster: deps
	scripts/test-cluster.sh

## cluster: a Swarm of extra engines on this machine (NODES=3); the host's Swarm is untouched
cluster: deps
	scripts/cluster.sh up $(or $(NODES),3)

## cluster-down: remove it all, leaving the host as it was
cluster-down:
	scripts/cluster.sh down

## lint: ruff and mypy --strict
lint: venv
	scripts/lint.sh

images: deps
	scripts/images.sh

bench: deps
	scripts/bench.sh

## deps: system packages and services the project needs, then the Python venv
deps:
	scripts/bootstrap.sh

venv:
	scripts/venv.sh
