# Wharf: the two commands are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   ?= ./wharf-data
PORT   ?= 8080

.PHONY: run test lint typecheck unit bench servers-up servers-down clean help

help:
	@echo "make run         start Wharf in mirror mode (SQLite + local disk under $(DATA), port $(PORT))"
	@echo "make test        lint (ruff), types (mypy --strict), tests (pytest)"
	@echo "make bench       benchmarks in tests/perf, results in bench-results/"
	@echo "make servers-up  start the loopback object stores the integration tests use"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/wharf serve --mode mirror --data-dir $(DATA) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check libs services edge tests
	$(BIN)/ruff format --check libs services edge tests

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

test: lint typecheck
	$(BIN)/pytest -q -rfEs

bench: $(STAMP)
	@mkdir -p bench-results
	$(BIN)/pytest -q -s -p no:cacheprovider tests/perf

servers-up: $(STAMP)
	PY_BIN=$(abspath $(BIN)) bash .ci/object-stores.sh install
	PY_BIN=$(abspath $(BIN)) bash .ci/object-stores.sh start s3 s3moto
	@echo "now: eval \"\$$(bash .ci/object-stores.sh env)\""

servers-down:
	bash .ci/object-stores.sh stop

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache bench-results
