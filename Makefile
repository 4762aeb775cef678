# Merge Assist: every target installs what it needs into .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   ?= .local-data

.PHONY: install demo test lint format synth bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## demo: the local stack (moto + in-process Lambdas + real ASL) with a seeded queue; Ctrl-C stops it
demo: install
	$(BIN)/merge-assist local --demo --data $(DATA)

## test: lint, then every test (unit, integration, e2e on the local stack, infra synth + cdk-nag)
test: lint
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy layers/core functions infra local tests

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## bench: figures, printed (webhook receiver p50/p99 and cold import time)
bench: install
	$(BIN)/merge-assist bench webhook

## synth: the CloudFormation template in cdk.out, with the layer and functions bundled locally (no Docker)
synth: install
	$(BIN)/python -m infra.app

clean:
	rm -rf $(VENV) cdk.out .pytest_cache .mypy_cache .ruff_cache $(DATA)
