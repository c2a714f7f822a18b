# Two commands do all set-up: `make serve` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN = $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080
DATA_DIR ?= ./tiermover-data

.PHONY: serve test bench-api bench-tape clean

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

bench-tape: $(BIN)/.installed
	$(BIN)/python bench/tape.py

clean:
	rm -rf $(VENV) tiermover-data
