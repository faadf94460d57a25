# Two commands for a new user: `make demo` (the main job) and `make test` (the whole suite).
# Both install from uv.lock, the exact version of every package, and the system packages
# they need (scripts/system-packages); `make lock` refreshes the lock on purpose.
PYTHON ?= python3
# uv installs from the lock; it is itself pinned here and installed from PyPI by pip
UV_VERSION := 0.13.9
VENV := .venv
BIN := $(VENV)/bin
UV_HOME := .uv
UV := $(UV_HOME)/bin/uv
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# uv makes the project's environment in .venv with this machine's Python, never one it downloads
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
export UV_NO_PROGRESS := 1
# Bytecode compiled once at install, as pip does: every posaudit process (the tests start
# hundreds) then imports Polars, scikit-learn and the rest without compiling them again, even
# where PYTHONDONTWRITEBYTECODE keeps Python from caching what it compiles.
export UV_COMPILE_BYTECODE := 1

.PHONY: demo test bench lab lint lock clean system-demo system-test

$(UV):
	$(PYTHON) -m venv $(UV_HOME)
	$(UV_HOME)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# The demo needs the runtime packages only; --inexact leaves the test extras of a `make test`.
$(STAMP): uv.lock pyproject.toml | $(UV)
	$(UV) sync --quiet --frozen --inexact
	touch $@

# The tests also cover the optional Spark engine (posaudit[spark]).
$(TEST_STAMP): uv.lock pyproject.toml | $(UV)
	$(UV) sync --quiet --frozen --extra dev --extra spark
	touch $@ $(STAMP)

system-demo:
	@scripts/system-packages demo

system-test:
	@scripts/system-packages test

demo: system-demo $(STAMP)
	$(BIN)/posaudit demo

test: system-test $(TEST_STAMP)
	$(BIN)/pytest

# The lock refreshed on purpose: the newest versions pyproject.toml's ranges allow. After an
# edit of pyproject.toml, `make lock LOCK_FLAGS=` changes only what the edit needs.
LOCK_FLAGS ?= --upgrade
lock: | $(UV)
	$(UV) lock $(LOCK_FLAGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/simulate_bench.py

# JupyterLab on the notebooks; builds the demo store first when it is missing.
lab: system-demo $(STAMP)
	@db="$${POSAUDIT_DB:-data/posaudit.duckdb}"; \
	test -f "$$db" || $(BIN)/posaudit demo --db "$$db" || exit 1; \
	$(BIN)/posaudit lab --db "$$db"

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) $(UV_HOME) data out
