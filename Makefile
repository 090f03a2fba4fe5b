# cockpit: two commands. `make demo` runs the cockpit on a demo fleet; `make test` runs every test.
# Both set everything up first: a .venv with the package, and tmux >= 3.2.
# `make test-unit` runs the tests that need no tmux and no ssh, in seconds, with only the .venv set up
# (it passes on a machine without tmux); `make lint` runs ruff, mypy on the engine and import-linter.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CLAUDE_CODE_VERSION := 2.1.197
CLAUDE := $(VENV)/npm/node_modules/.bin/claude

.PHONY: setup demo test test-unit lint test-environments test-latest screenshots bench clean claude-cli

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

test: setup lint claude-cli
	$(BIN)/python -m pytest -n 2 -q -p no:cacheprovider $(PYTEST_ARGS)

# The real Claude Code CLI for tests/test_claude_real.py, from the npm registry into .venv/npm (outside
# the sources; the tests install it themselves too, and skip only where npm is missing).
claude-cli: $(VENV)/.installed
	@if [ -x $(CLAUDE) ]; then :; elif command -v npm >/dev/null 2>&1; then \
	  npm install --prefix $(VENV)/npm --no-audit --no-fund --loglevel=error @anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION); \
	else echo "note: npm is not installed: the tests that run the real Claude Code CLI will be skipped"; fi

# No `setup`: it would install tmux. Tests that start tmux are marked `tmux`, those that log in over
# ssh `ssh` (tests/conftest.py fails a test that starts a tmux server or an sshd without its marker).
test-unit: $(VENV)/.installed
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not tmux and not ssh" $(PYTEST_ARGS)

# ruff (pyproject [tool.ruff]) on everything; mypy on the engine; the import contracts (the engine
# imports nothing from the UI). `make test` runs it first.
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy cockpit/core
	$(BIN)/lint-imports

# The tests that start tmux, again from environments that differ from the runner's: a private
# TMUX_TMPDIR (tmux's own socket directory moves), then a C locale (tmux sanitises its output).
# One fleet must look the same from every environment; .ci/run runs this after `make test`.
test-environments: setup claude-cli
	d=$$(mktemp -d) && TMUX_TMPDIR=$$d $(BIN)/python -m pytest -n 2 -q -p no:cacheprovider -m tmux $(PYTEST_ARGS); \
	  s=$$?; rm -rf $$d; exit $$s
	LANG=C LC_ALL=C $(BIN)/python -m pytest -n 2 -q -p no:cacheprovider -m tmux $(PYTEST_ARGS)

# The suite against the newest Textual, in a venv of its own (.venv-latest): what upgrading past
# the pin would break. Not part of .ci/run, and expected to fail in places: the snapshot tests
# (every Textual release draws a little differently) and, when an internal moved, its canary in
# tests/test_internals.py (see cockpit/ui/internals.py; COCKPIT_STOCK_WIDGETS=1 runs cockpit
# without them). pip warns that the upgrade breaks the pin: that is the point.
LATEST := .venv-latest
test-latest: setup
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/pip install --quiet --upgrade pip
	$(LATEST)/bin/pip install --quiet -e '.[test]'
	$(LATEST)/bin/pip install --quiet --upgrade textual
	@$(LATEST)/bin/python -c 'import textual; print("textual", textual.__version__)'
	$(LATEST)/bin/python -m pytest -n 2 -q -p no:cacheprovider $(PYTEST_ARGS)

screenshots: setup
	$(BIN)/python scripts/screenshots.py

bench: setup
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(LATEST) .pytest_cache
