# Bag Hunter: `make help` lists the targets. Every target bootstraps the virtualenv itself.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Stamp file: reinstall only when the project's dependencies change.
INSTALLED := $(VENV)/.installed
EXTRAS ?= airflow,train,serve,dev

.DEFAULT_GOAL := help

help: ## show this help
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(INSTALLED): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	@touch $@

venv: $(INSTALLED) ## create the virtualenv and install the project with all extras

demo: $(INSTALLED) ## the whole pipeline on the generated sample catalog (embedded default)
	$(BIN)/baghunter demo

up: $(INSTALLED) ## Airflow, MLflow UI and the upload page on localhost (Ctrl-C stops all)
	$(BIN)/baghunter up

test: $(INSTALLED) ## run the test suite (all tiers; slow tests included)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(INSTALLED) ## run the tests not marked slow
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(INSTALLED) ## ruff + mypy
	$(BIN)/ruff check baghunter dags plugins tests bench
	$(BIN)/ruff format --check baghunter dags plugins tests bench
	$(BIN)/mypy

bench-ingest: $(INSTALLED) ## ingestion benchmark: bulk vs per-row upserts, concurrent vs sequential downloads
	$(BIN)/python bench/ingest_bench.py

clean: ## remove the virtualenv and the local data home
	rm -rf $(VENV) .baghunter

.PHONY: help venv demo up test test-fast lint bench-ingest clean
