# `make run` and `make test` set everything up on a fresh clone; see README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench

run: $(VENV)/installed
	$(BIN)/footfall serve

test: $(VENV)/installed-test
	scripts/install-browser
	scripts/services
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest

bench: $(VENV)/installed-test
	scripts/install-bench-tools
	$(BIN)/python bench/run.py

$(VENV)/installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/installed-test: pyproject.toml $(VENV)/installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@
