# The README's two commands: `make repro` (the whole pipeline) and `make test` (the suite).
# Both create .venv with Python 3.11 and install the project into it first, from the lock file.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock
PLOTS_TEMPLATE := .dvc/plots-template.html
RUN := PATH="$(CURDIR)/$(BIN):$$PATH"
TEST_WORKERS ?= auto
# uv installs the lock's wheels in parallel, compiled to bytecode as pip would; pip installs uv itself,
# as pinned and hashed in the lock
UV_INSTALL := $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python

.DEFAULT_GOAL := help
.PHONY: help install lock repro test lint browser hooks docs clean

help:  ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  make %-9s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml $(LOCK) package.json package-lock.json
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'"; exit 2; }
	@command -v npm >/dev/null 2>&1 || { echo "error: npm not found; install Node.js (it fetches the offline plot scripts)"; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	awk '/^uv==/ {pin = 1} pin {print} pin && !/\\$$/ {exit}' $(LOCK) > $(VENV)/uv-requirement.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r $(VENV)/uv-requirement.txt
	$(UV_INSTALL) --require-hashes -r $(LOCK)
	$(UV_INSTALL) --no-deps --no-build-isolation -e .
	npm ci --silent --no-audit --no-fund
	$(BIN)/moviegenre plots-template --out $(PLOTS_TEMPLATE)
	touch $(STAMP)

install: $(STAMP)  ## Create .venv from requirements.lock, and the offline plot page's scripts

lock:  ## Refresh requirements.lock from pyproject.toml (UPGRADE=1: newest releases too)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --universal --python-version 3.11 \
		--custom-compile-command "make lock" $(if $(UPGRADE),--upgrade) --quiet -o $(LOCK)

repro: $(STAMP)  ## The main job: every stage of dvc.yaml on the shared dataset, default params
	$(RUN) $(BIN)/dvc repro
	$(RUN) $(BIN)/dvc metrics show

test: lint browser  ## The test suite: lint, types, unit tests and end-to-end DVC runs (one process per core)
	$(RUN) $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

lint: $(STAMP)  ## ruff (lint and format), import contracts and mypy
	$(BIN)/ruff check src stages tests benchmarks
	$(BIN)/ruff format --check src stages tests benchmarks
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

browser:  ## Debian's Chromium for the page tests (installed as root or with passwordless sudo, as in CI)
	@if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi; \
		if [ "$$SUDO" != none ] && command -v apt-get >/dev/null 2>&1; then \
			$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
		else \
			echo "note: no chromium (apt-get install chromium); the page tests skip, and fail under CI=true"; \
		fi; \
	fi

hooks: $(STAMP)  ## Install the git pre-commit hooks (ruff, format, import contracts, mypy, check-params)
	$(BIN)/pre-commit install

docs: $(STAMP)  ## Build the documentation site into site/ (mkdocs, strict)
	$(BIN)/mkdocs build --strict

clean:  ## Remove the pipeline's outputs (the DVC cache keeps them: `dvc checkout` restores)
	rm -rf data/raw data/prepared data/features data/predictions data/ensemble models metrics plots dvclive
