"""Where the server secret comes from, per stage."""

import pytest

from chalicelib.config import ConfigError, settings
from chalicelib.server_secret import DEV_SECRET, SecretNotConfigured, server_secret
from chinqit_admin import provision
from devstack import container


@pytest.fixture
def stage(monkeypatch, aws):
    monkeypatch.delenv("SMSGW_SECRET_KEY")

    def configure(**env):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        container.reset()

    yield configure
    monkeypatch.undo()
    container.reset()


def test_production_reads_the_secret_the_data_stack_made(stage):
    stage(SMSGW_STAGE="prod", SMSGW_SECRET_KEY_SECRET="chinqit-dev-secret-key")
    first = server_secret()
    assert len(first) >= 48 and first != DEV_SECRET
    provision.all_resources()  # a rerun keeps the existing secret
    container.reset()
    assert server_secret() == first


def test_production_without_a_secret_refuses_to_run(stage):
    stage(SMSGW_STAGE="prod")
    with pytest.raises(SecretNotConfigured):
        server_secret()


def test_dev_falls_back_to_the_dev_secret(stage):
    stage(SMSGW_STAGE="dev")
    assert server_secret() == DEV_SECRET


def test_no_stage_is_not_the_dev_stage(stage, monkeypatch):
    monkeypatch.delenv("SMSGW_STAGE", raising=False)
    stage()
    with pytest.raises(SecretNotConfigured):
        server_secret()


def test_the_dev_secret_is_refused_inside_lambda(stage):
    stage(SMSGW_STAGE="dev", AWS_LAMBDA_FUNCTION_NAME="chinqit-sms-gateway-dev")
    with pytest.raises(SecretNotConfigured):
        server_secret()


@pytest.mark.parametrize(
    "env",
    [
        {"SMSGW_STAGE": "prod"},
        {},
        {"SMSGW_STAGE": "dev", "AWS_LAMBDA_FUNCTION_NAME": "chinqit-sms-gateway-dev"},
    ],
)
def test_local_webhooks_are_refused_outside_the_local_stack(stage, monkeypatch, env):
    monkeypatch.delenv("SMSGW_STAGE", raising=False)
    stage(SMSGW_WEBHOOK_ALLOW_LOCAL="1", **env)
    with pytest.raises(ConfigError, match="local stack only"):
        settings()


def test_local_webhooks_are_allowed_on_the_local_stack(stage):
    stage(SMSGW_WEBHOOK_ALLOW_LOCAL="1", SMSGW_STAGE="dev")
    assert settings().webhook_allow_local is True
