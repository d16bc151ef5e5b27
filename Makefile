# masklab: `make demo` and `make test` set up .venv first (quick when already done).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: setup demo test bench lint format clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=23.2" setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[all,dev]'
	@touch $(STAMP)

demo: setup
	$(BIN)/masklab demo --out demo_out

test: setup
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

lint: setup
	$(BIN)/ruff check masklab tests bench

format: setup
	$(BIN)/ruff format masklab tests bench

clean:
	rm -rf demo_out .pytest_cache .ruff_cache build *.egg-info
