"""Settings: defaults < config file < SMSGW_BRIDGE_* environment < flags."""

from __future__ import annotations

import dataclasses
import os
import re

import pytest

from device_bridge import cli, config

REQUIRED_ENV = {
    "SMSGW_BRIDGE_API_URL": "https://sms.example.com",
    "SMSGW_BRIDGE_DEVICE_KEY": "dk_1",
    "SMSGW_BRIDGE_DRIVER": "simulator",
}


def write(tmp_path, text: str):
    path = tmp_path / "bridge.toml"
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


def test_defaults_are_the_documented_ones():
    settings = config.load([], REQUIRED_ENV)
    assert (
        settings.sends_per_minute,
        settings.send_burst,
        settings.max_attempts,
        settings.heartbeat_interval,
        settings.wait_time_seconds,
        settings.visibility_timeout,
        settings.max_buffered,
    ) == (6.0, 1, 3, 60.0, 20, 60, 10)
    assert settings.queues == {
        "priority": "chinqit-dev-outbound-priority",
        "bulk": "chinqit-dev-outbound",
    }
    assert settings.journal.endswith("chinqit-bridge/journal.sqlite3")


def test_flags_beat_environment_which_beats_the_file(tmp_path):
    path = write(
        tmp_path,
        """
api_url = "https://from-file.example.com"
device_key = "dk_file"
sends_per_minute = 2
max_attempts = 5
outbound_queue = "file-queue"

[driver]
name = "modem"
port = "/dev/ttyUSB2"
baudrate = 9600
""",
    )
    settings = config.load(
        ["--config", path, "--max-attempts", "7", "--driver-option", "port=/dev/ttyUSB3"],
        {"SMSGW_BRIDGE_SENDS_PER_MINUTE": "4", "SMSGW_BRIDGE_MAX_ATTEMPTS": "6"},
    )
    assert settings.api_url == "https://from-file.example.com"
    assert settings.driver == "modem"
    assert settings.outbound_queue == "file-queue"
    assert settings.sends_per_minute == 4.0
    assert settings.max_attempts == 7
    assert settings.driver_options == {"port": "/dev/ttyUSB3", "baudrate": 9600}


def test_driver_options_come_from_the_environment_between_the_file_and_the_flags():
    settings = config.load(
        ["--driver", "modem", "--driver-option", "pin=1234"],
        {
            "SMSGW_BRIDGE_API_URL": "https://api.example.com",
            "SMSGW_BRIDGE_DEVICE_KEY": "dk_env",
            "SMSGW_BRIDGE_DRIVER_OPTION_PORT": "/dev/ttyUSB4",
            "SMSGW_BRIDGE_DRIVER_OPTION_PIN": "0000",
        },
    )
    assert settings.driver_options == {"port": "/dev/ttyUSB4", "pin": "1234"}


def test_missing_required_options_are_named_with_their_flag_and_variable():
    with pytest.raises(config.ConfigError) as error:
        config.load(["--driver", "modem"], {})
    assert "api_url (--api-url or SMSGW_BRIDGE_API_URL)" in str(error.value)
    assert "device_key" in str(error.value) and "driver (" not in str(error.value)


@pytest.mark.parametrize(
    "argv, complaint",
    [
        (["--wait-time-seconds", "30"], "wait_time_seconds must be at most 20"),
        (["--sends-per-minute", "often"], "sends_per_minute: 'often' is not a valid float"),
        (["--log-level", "loud"], "log_level must be one of"),
        (["--aws-credentials", "iam-user"], "aws_credentials must be one of device, environment"),
        (["--lines", "+22238000001@orange"], "operator 'orange' is not one of"),
        (["--driver-option", "port"], "--driver-option expects KEY=VALUE"),
    ],
)
def test_invalid_values_are_refused(argv, complaint):
    with pytest.raises(config.ConfigError, match=complaint):
        config.load(argv, REQUIRED_ENV)


def test_unknown_keys_in_the_file_are_refused(tmp_path):
    with pytest.raises(config.ConfigError, match="unknown option.*sends_per_minutes"):
        config.load(["--config", write(tmp_path, "sends_per_minutes = 3")], REQUIRED_ENV)


def test_help_documents_every_option_with_its_variable():
    text = config.parser().format_help()
    for option in config.OPTIONS:
        assert f"--{option.name.replace('_', '-')}" in text
        assert f"SMSGW_BRIDGE_{option.name.upper()}" in text
        assert option.metadata["help"]
    assert "[driver]" in text and "AWS_ENDPOINT_URL" in text


def test_device_key_is_kept_out_of_the_config_repr():
    assert "dk_1" not in repr(config.load([], REQUIRED_ENV))


def test_command_line_exits_2_on_a_configuration_error(monkeypatch, capsys):
    for name in REQUIRED_ENV:
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["--driver", "modem"]) == 2
    assert "missing required option(s)" in capsys.readouterr().err


def test_every_option_field_has_documentation():
    undocumented = [
        f.name
        for f in dataclasses.fields(config.BridgeConfig)
        if f.name not in ("driver_options", "bank") and not f.metadata.get("help")
    ]
    assert undocumented == []


def test_a_config_file_with_the_device_key_readable_by_others_is_refused(tmp_path):
    path = write(tmp_path, 'api_url = "https://sms.example.com"\ndevice_key = "dk_file"\n')
    os.chmod(path, 0o644)
    with pytest.raises(config.ConfigError, match="readable by other users; run chmod 600"):
        config.load(["--config", path, "--driver", "simulator"], {})
    os.chmod(path, 0o600)
    assert config.load(["--config", path, "--driver", "simulator"], {}).device_key == "dk_file"


def test_a_sim_pin_in_the_driver_table_counts_as_a_secret(tmp_path):
    path = write(tmp_path, '[driver]\nname = "modem"\nport = "/dev/x"\npin = "1234"\n')
    os.chmod(path, 0o640)
    with pytest.raises(config.ConfigError, match="chmod 600"):
        config.load(["--config", path], REQUIRED_ENV)
    os.chmod(path, 0o644)  # no secret in it: readable is fine
    path2 = write(tmp_path, "sends_per_minute = 4\n")
    os.chmod(path2, 0o644)
    assert config.load(["--config", path2], REQUIRED_ENV).sends_per_minute == 4


def test_log_json_is_a_flag_a_variable_or_a_file_key():
    assert config.load([], REQUIRED_ENV).log_json is False
    assert config.load(["--log-json"], REQUIRED_ENV).log_json is True
    assert config.load([], {**REQUIRED_ENV, "SMSGW_BRIDGE_LOG_JSON": "yes"}).log_json is True
    with pytest.raises(config.ConfigError, match="log_json"):
        config.load(["--log-json", "maybe"], REQUIRED_ENV)


@pytest.fixture
def root_logging():
    """configure_logging sets the process's root logger: put it back for the next tests."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    chatty = {name: logging.getLogger(name).level for name in cli.CHATTY_LIBRARIES}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, each in chatty.items():
        logging.getLogger(name).setLevel(each)


def test_json_logs_are_one_object_a_line(capsys, root_logging):
    import json
    import logging

    cli.configure_logging("INFO", log_json=True)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("chinqit.bridge").exception("driver %s down", "modem")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    entry = json.loads(line)
    assert entry["level"] == "ERROR" and entry["logger"] == "chinqit.bridge"
    assert entry["message"] == "driver modem down" and "boom" in entry["exception"]
    assert entry["ts"].endswith("+00:00")


BANK = """
api_url = "https://sms.example.com"
device_key = "dk_test"
sends_per_minute = 4
max_per_day = 300

[[line]]
number = "+22238000001"
[line.driver]
name = "simulator"
outbox = "/tmp/a.jsonl"

[[line]]
number = "+22244000002"
operator = "Mauritel"
sends_per_minute = 2
max_recipients_per_day = 50
[line.driver]
name = "modem"
port = "/dev/ttyUSB2"
"""


def test_a_sim_bank_has_a_driver_number_and_settings_per_line(tmp_path):
    settings = config.load(["--config", write(tmp_path, BANK)], {})
    first, second = settings.bank
    assert (first.slot, first.number, first.driver, first.driver_options) == (
        1,
        "+22238000001",
        "simulator",
        {"outbox": "/tmp/a.jsonl"},
    )
    assert (second.slot, second.operator, second.driver) == (2, "mauritel", "modem")
    line_two = settings.for_line(second)
    assert (line_two.sends_per_minute, line_two.max_per_day) == (2.0, 300)
    assert line_two.max_recipients_per_day == 50
    assert settings.for_line(first).sends_per_minute == 4.0


@pytest.mark.parametrize(
    "change, complaint",
    [
        (('number = "+22238000001"\n', ""), "[[line]] 1: number is required"),
        (('name = "simulator"\n', ""), "[[line]] 1: a [line.driver] table with its name"),
        (("sends_per_minute = 2", "sends_per_minute = 0"), "sends_per_minute must be at least"),
        (("operator", "colour"), "[[line]] 2: unknown key(s) colour"),
        (("max_per_day = 300", 'driver = "modem"'), "[[line]] tables replace driver"),
        (("max_per_day = 300", "warmup_days = 7"), "warmup_days needs max_per_day"),
    ],
)
def test_a_wrong_line_table_is_refused_with_where_it_is(tmp_path, change, complaint):
    path = write(tmp_path, BANK.replace(*change, 1))
    with pytest.raises(config.ConfigError, match=re.escape(complaint)):
        config.load(["--config", path], {})


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://sms.example.com", "ftp://x"])
def test_an_api_url_without_tls_is_refused_unless_allowed_for_a_local_stack(url):
    environ = {**REQUIRED_ENV, "SMSGW_BRIDGE_API_URL": url}
    with pytest.raises(config.ConfigError, match="api_url must start with https://"):
        config.load([], environ)
    if url.startswith("http://"):
        allowed = config.load([], {**environ, "SMSGW_BRIDGE_ALLOW_INSECURE_HTTP": "true"})
        assert allowed.api_url == url


def test_a_ca_bundle_is_what_the_api_client_and_sqs_verify_against(tmp_path, monkeypatch):
    from device_bridge.transport import ApiClient, sqs_client

    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = config.load(["--ca-bundle", str(bundle)], REQUIRED_ENV)
    assert ApiClient(
        settings.api_url, "k", 1, "ua", ca_bundle=settings.ca_bundle
    ).session.verify == str(bundle)
    assert ApiClient(settings.api_url, "k", 1, "ua").session.verify is True
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = sqs_client(0, ca_bundle=settings.ca_bundle)
    assert client._endpoint.http_session._verify == str(bundle)
    with pytest.raises(config.ConfigError, match="ca_bundle: .* is not a file"):
        config.load(["--ca-bundle", str(tmp_path / "missing.pem")], REQUIRED_ENV)
