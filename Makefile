# Two commands: `make run` starts the gateway locally, `make test` tests it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test unit lint template deploy destroy bench chaos clean

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

# ruff and mypy take their settings (and mypy its packages) from pyproject.toml;
# cfn-lint (with the serverless rules) checks both stacks as they would be deployed.
lint: $(STAMP) template
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/cfn-lint -a cfn_lint_serverless.rules -- var/template/package/sam.json var/template/data.json

# The stage's two stacks as files (var/template/): data.json, and the app stack as deploy
# builds it (chalice's package with the app overrides merged in, its zip slimmed). Offline:
# nothing is deployed.
STAGE ?= prod
template: $(STAMP)
	rm -rf var/template && mkdir -p var/template
	$(VENV)/bin/chinqit-admin --stage $(STAGE) template data > var/template/data.json
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} \
		$(VENV)/bin/chinqit-admin --stage $(STAGE) package var/template

# Deploy or delete a stage on the AWS account of your credentials (see the README):
#   make deploy STAGE=prod [DEPLOY_ARGS="--alarm-email ops@example.com"]
#   make destroy STAGE=prod [DESTROY_ARGS=--data]
deploy: $(STAMP)
	$(VENV)/bin/chinqit-admin --stage $(STAGE) deploy $(DEPLOY_ARGS)

destroy: $(STAMP)
	$(VENV)/bin/chinqit-admin --stage $(STAGE) destroy $(DESTROY_ARGS)

unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

bench: $(STAMP)
	$(PY) -m bench

# The full chaos run (a short one is part of `make test`): about 5 minutes.
chaos: $(STAMP)
	$(PY) -m tests.chaos

clean:
	rm -rf $(VENV) var
