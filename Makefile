# Two commands for a new user: `make demo` (the main job) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SPARK_STAMP := $(VENV)/.installed-spark

.PHONY: demo test bench lab lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The tests also cover the optional Spark engine (posaudit[spark]); the demo does not need it.
$(SPARK_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,spark]'
	touch $(SPARK_STAMP)

demo: $(STAMP)
	$(BIN)/posaudit demo

test: $(SPARK_STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/simulate_bench.py

# JupyterLab on the notebooks; builds the demo store first when it is missing.
lab: $(STAMP)
	@db="$${POSAUDIT_DB:-data/posaudit.duckdb}"; \
	test -f "$$db" || $(BIN)/posaudit demo --db "$$db" || exit 1; \
	$(BIN)/posaudit lab --db "$$db"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) data out
