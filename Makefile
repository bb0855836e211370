# Two commands: `make run` starts the gateway locally, `make test` tests it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test unit lint bench chaos clean

# The project itself is installed editable so its metadata (the bridge's version) exists.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet -e '.[modem,admin]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m devstack

# The console tests drive Debian's Chromium with its ChromeDriver (and draw Arabic with
# DejaVu): installed here when missing, as root or with sudo.
BROWSER := /usr/bin/chromedriver
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
$(BROWSER):
	$(SUDO) sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-dejavu-core >/dev/null'

test: $(STAMP) $(BROWSER)
	$(PY) -m pytest -q $(PYTEST_ARGS)

# ruff and mypy take their settings (and mypy its packages) from pyproject.toml
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

bench: $(STAMP)
	$(PY) -m bench

# The full chaos run (a short one is part of `make test`): about 5 minutes.
chaos: $(STAMP)
	$(PY) -m tests.chaos

clean:
	rm -rf $(VENV) var
