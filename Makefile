# Everything runs inside .venv, made from the system's Python 3.11 on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup test lint demo

# torch==2.13.0 goes in first, alone: any other torch request here would pull the CUDA build (several GB).
$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

setup: $(VENV)/.installed

test: setup
	$(BIN)/python -m ruff check .
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/python -m ruff check .

demo: setup
	$(BIN)/python -m modeling_dems.demo
