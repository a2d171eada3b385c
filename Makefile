# The README's commands. Everything installs itself into .venv; nothing is needed beyond python3.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup lint test run bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements-dev.txt requirements.txt media_host/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

# The media host alone, configured from .env (see the configuration table in README.md).
run: setup
	set -a; [ ! -f .env ] || . ./.env; set +a; exec $(BIN)/python -m media_host

bench: setup
	$(BIN)/python -m bench.media_load --calls 1 --seconds 10
	$(BIN)/python -m bench.media_load --calls 50 --seconds 10

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache out
