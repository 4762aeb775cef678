# Merge Assist: every target installs what it needs into .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   ?= .local-data
WEB_STAMP := web/node_modules/.installed
CHROMIUM  := /usr/bin/chromium

.PHONY: install web-install web chromium api-types demo test lint format synth bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

web-install: $(WEB_STAMP)

$(WEB_STAMP): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	touch $(WEB_STAMP)

## web: the dashboard SPA, built to web/dist (served by the local stack, deployed by the CDK app)
web: web-install
	cd web && npm run build

## chromium: Debian's Chromium for the browser tests (Playwright drives it; no browser download)
chromium:
	@test -x $(CHROMIUM) || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends chromium; }

## api-types: the dashboard's copy of the API's OpenAPI document and its TypeScript types
api-types: install web-install
	$(BIN)/python -m functions.api.openapi web/src/api/openapi.json
	cd web && npm run api-types

## demo: the local stack (moto + in-process Lambdas + real ASL) with a seeded queue; Ctrl-C stops it
demo: install web
	$(BIN)/merge-assist local --demo --data $(DATA)

## test: lint, then every test (unit, integration, e2e on the local stack, infra synth + cdk-nag),
## the dashboard's component tests (Vitest) and its browser tests (Playwright + Chromium)
test: lint web chromium
	$(BIN)/python -m pytest -n 2 --dist loadfile
	cd web && npm test
	cd web && npm run e2e

lint: install web-install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy layers/core functions infra local cli bench tests
	cd web && npm run typecheck && npm run api-types:check

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## bench: figures, printed, and docs/benchmarks.md + .png (webhook receiver; the queue against marge-bot)
bench: install
	$(BIN)/merge-assist bench all

## synth: the CloudFormation template in cdk.out, with the layer and functions bundled locally (no Docker)
synth: install web
	$(BIN)/python -m infra.app

clean:
	rm -rf $(VENV) cdk.out .pytest_cache .mypy_cache .ruff_cache $(DATA)
	rm -rf web/node_modules web/dist web/test-results web/e2e/artifacts
