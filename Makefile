# Two commands do all set-up: `make serve` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN = $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080
DATA_DIR ?= ./tiermover-data

.PHONY: serve test bench-api bench-copy bench-scan bench-tape clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

serve: $(BIN)/.installed
	$(BIN)/tiermover serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench-api: $(BIN)/.installed
	$(BIN)/python bench/api.py

# BENCH_ARGS: e.g. --scale 0.1 --runs 1 for a quick run (see bench/README.md).
bench-copy: $(BIN)/.installed
	$(BIN)/python bench/copy.py $(BENCH_ARGS)

bench-scan: $(BIN)/.installed
	$(BIN)/python bench/scan.py $(BENCH_ARGS)

bench-tape: $(BIN)/.installed
	$(BIN)/python bench/tape.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) tiermover-data
