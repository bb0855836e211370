# Two commands: `make run` starts the gateway locally, `make test` tests it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test unit bench clean

# The project itself is installed editable so its metadata (the bridge's version) exists.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet -e '.[modem,admin]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m devstack

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) var
