# cockpit: two commands. `make demo` runs the cockpit on a demo fleet; `make test` runs every test.
# Both set everything up first: a .venv with the package, and tmux >= 3.2.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup demo test screenshots bench clean

setup: $(VENV)/.installed
	@sh scripts/ensure-tools.sh

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "cockpit needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

demo: setup
	$(BIN)/cockpit demo

test: setup
	$(BIN)/python -m pytest -n 2 -q -p no:cacheprovider $(PYTEST_ARGS)

screenshots: setup
	$(BIN)/python scripts/screenshots.py

bench: setup
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
