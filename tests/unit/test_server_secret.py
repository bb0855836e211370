"""Where the server secret comes from, per stage."""

import pytest

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


def test_production_reads_the_ssm_parameter_provision_created(stage):
    stage(SMSGW_STAGE="prod", SMSGW_SECRET_KEY_PARAMETER="/chinqit/prod/secret-key")
    assert provision.secret_parameter() == "/chinqit/prod/secret-key"
    first = server_secret()
    assert len(first) >= 48 and first != DEV_SECRET
    provision.secret_parameter()  # a rerun keeps the existing secret
    container.reset()
    assert server_secret() == first


def test_production_without_a_secret_refuses_to_run(stage):
    stage(SMSGW_STAGE="prod")
    with pytest.raises(SecretNotConfigured):
        server_secret()


def test_dev_falls_back_to_the_dev_secret(stage):
    stage(SMSGW_STAGE="dev")
    assert server_secret() == DEV_SECRET
