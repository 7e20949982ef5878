# homerun: every entry point a person or CI uses. Each target calls one script in scripts/.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: up down test test-unit lint images bench venv deps

## up: install what is missing, build images, deploy the stack, run a sample job
up: deps
	scripts/up.sh

## down: remove the stack (PURGE=1 also removes its volumes)
down:
	scripts/down.sh

## test: the whole suite — lint, types, unit, integration and e2e on a real Swarm
test: deps
	scripts/test.sh

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
