# lowres-adapt: every setup path installs the pinned CPU torch first (TORCH_SPEC), then the package.
#   make demo   -> create .venv, install, run examples/bashkir_study.py (offline demo preset)
#   make test   -> create .venv, install, run the test suite
# GPU users: make demo TORCH_SPEC="torch==2.9.1 --index-url https://download.pytorch.org/whl/cu128"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.lowres-adapt-installed

.PHONY: setup demo test lint build clean bench

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[dev,lid,cluster]"
	touch $(STAMP)

demo: setup
	$(BIN)/python examples/bashkir_study.py

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src tests examples benchmarks

build: setup
	$(BIN)/python -m build

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
