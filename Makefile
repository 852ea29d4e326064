# Two commands set up everything on a fresh clone:
#   make demo   - install, load the demo networks into ./partnerledger.db (once)
#                 and start the web app on http://127.0.0.1:8000 with demo sign-ins
#   make test   - install, then lint, type-check and run the whole test suite,
#                 then install the example plugin and run its tests
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXAMPLE := examples/partnerledger-referral-streak

.PHONY: demo test lint install example clean bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/partnerledger serve --demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The worked third-party plugin (docs/plugins.md): installed into the venv,
# where default_rules() then loads it for the main suite too.
example: $(STAMP)
	$(BIN)/python -m pip install --quiet -e $(EXAMPLE)
	$(BIN)/pytest $(EXAMPLE)/tests

test: lint
	$(BIN)/python -m pip install --quiet -e $(EXAMPLE)
	$(BIN)/pytest tests $(EXAMPLE)/tests

# Every benchmark on SQLite and PostgreSQL, beside the raw limits of this machine;
# rewrites docs/performance.md and docs/performance.svg (sizes: python -m benchmarks -h).
bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	rm -rf $(EXAMPLE)/build $(EXAMPLE)/src/*.egg-info $(EXAMPLE)/.pytest_cache
