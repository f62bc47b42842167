# Everything runs inside .venv, made from the system's Python 3.11 on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup test test-fast lint train demo

# torch==2.13.0 goes in first, alone: any other torch request here would pull the CUDA build (several GB).
$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

setup: $(VENV)/.installed

# Everything, with the 15 slowest tests named at the end.
test: setup
	$(BIN)/python -m ruff check .
	$(BIN)/python -m pytest -q --durations=15

# The edit-test loop: everything but the tests marked slow (setup.cfg says which kinds).
test-fast: setup
	$(BIN)/python -m ruff check .
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/python -m ruff check .

# The main job: train on scikit-learn's digits (offline), print held-out top-1, leave a checkpoint in outputs/digits.
# One thread: the digits model is tiny, and extra threads only slow it down on a busy machine.
train: setup
	OMP_NUM_THREADS=1 $(BIN)/python train.py --output_dir outputs/digits

demo: setup
	$(BIN)/python -m modeling_dems.demo
