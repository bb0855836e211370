"""`chinqit-bridge doctor` on a fake modem over a pseudo-terminal, the fake device API and
the moto server's queues."""

from __future__ import annotations

import pytest

from device_bridge import cli
from tests.integration.bridge.fakes import DEVICE_KEY
from tests.integration.drivers.fake_modem import SERVICE_CENTRE, FakeModem
from tests.integration.drivers.harnesses import FakeTermuxApi
from tests.integration.drivers.smsgate_fake import PASSWORD, SIGNING_KEY, USERNAME, FakeSmsGateApp


@pytest.fixture
def modem():
    fake = FakeModem("sim800")
    yield fake
    fake.close()


@pytest.fixture
def doctor(queues, api, modem, monkeypatch, capsys):
    """Runs the doctor as `chinqit-bridge doctor` would; (exit code, its lines)."""

    def run(
        *extra: str,
        device_key: str = DEVICE_KEY,
        api_url: str | None = None,
        phone: str | None = None,
    ):
        """``phone``: a driver other than the modem, its options given in ``extra``."""
        if phone is not None:
            monkeypatch.delenv("SMSGW_BRIDGE_DRIVER_OPTION_PORT", raising=False)
        environ = {
            "SMSGW_BRIDGE_API_URL": api_url or api.url,
            "SMSGW_BRIDGE_ALLOW_INSECURE_HTTP": "true",
            "SMSGW_BRIDGE_DEVICE_KEY": device_key,
            "SMSGW_BRIDGE_DRIVER": phone or "modem",
            **({"SMSGW_BRIDGE_DRIVER_OPTION_PORT": modem.port} if phone is None else {}),
            "SMSGW_BRIDGE_AWS_CREDENTIALS": "environment",
            "SMSGW_BRIDGE_OUTBOUND_QUEUE": queues.names["bulk"],
            "SMSGW_BRIDGE_PRIORITY_QUEUE": queues.names["priority"],
        }
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        code = cli.main(["doctor", *extra])
        return code, capsys.readouterr().out.splitlines()

    return run


def line(lines: list[str], check: str) -> str:
    return next(text for text in lines if text[6:].startswith(check + ":"))


def test_a_healthy_host_passes_every_check(doctor, modem):
    code, lines = doctor()
    assert code == 0, lines
    assert line(lines, f"modem {modem.port}").startswith("OK")
    assert line(lines, "SIM") == "OK    SIM: ready"
    assert line(lines, "network") == "OK    network: registered, home network (MATTEL)"
    assert line(lines, "signal").startswith("OK    signal: -73 dBm")
    assert line(lines, "SMS centre") == f"OK    SMS centre: {SERVICE_CENTRE}"
    assert line(lines, "device key").startswith("OK    device key: dk_")
    assert DEVICE_KEY not in "\n".join(lines)  # never the whole key
    assert line(lines, "queue bulk").startswith("OK")
    assert line(lines, "queue priority").startswith("OK")


def test_a_sim_asking_for_its_pin_without_one_configured_fails_with_the_fix(queues, api, doctor):
    locked = FakeModem("sim800", pin="1234")
    try:
        code, lines = doctor("--driver-option", f"port={locked.port}")
    finally:
        locked.close()
    assert code == 1
    assert line(lines, "SIM") == "FAIL  SIM: SIM PIN - set the modem's pin option"


def test_a_configured_pin_unlocks_the_sim(doctor):
    locked = FakeModem("sim800", pin="1234")
    try:
        code, lines = doctor(
            "--driver-option", f"port={locked.port}", "--driver-option", "pin=1234"
        )
    finally:
        locked.close()
    assert code == 0, lines


@pytest.mark.parametrize(
    "fault, check, expected",
    [
        ({"registration": "3"}, "network", "FAIL  network: registration denied"),
        ({"service_centre": ""}, "SMS centre", "FAIL  SMS centre: not set"),
        ({"rssi": 5}, "signal", "WARN  signal: -103 dBm (CSQ 5)"),
    ],
)
def test_network_trouble_is_named_with_a_hint(doctor, modem, fault, check, expected):
    for name, value in fault.items():
        setattr(modem, name, value)
    code, lines = doctor()
    assert line(lines, check).startswith(expected)
    assert code == (0 if expected.startswith("WARN") else 1)


def test_a_refused_device_key_fails(doctor):
    code, lines = doctor(device_key="dk_revoked_1234")
    assert code == 1
    assert line(lines, "device key").startswith("FAIL  device key: dk_r… refused (HTTP 403)")


def test_an_unreachable_api_fails(doctor):
    code, lines = doctor(api_url="http://127.0.0.1:9")
    assert code == 1
    assert line(lines, "API").startswith("FAIL  API: unreachable")


def test_a_missing_queue_fails(doctor):
    code, lines = doctor("--outbound-queue", "no-such-queue")
    assert code == 1
    assert line(lines, "queue bulk").startswith("FAIL  queue bulk: no-such-queue")


def test_a_port_without_modem_fails(doctor, tmp_path):
    code, lines = doctor("--driver-option", f"port={tmp_path / 'ttyUSB9'}")
    assert code == 1
    assert "cannot open" in line(lines, f"modem {tmp_path / 'ttyUSB9'}")


def test_a_config_error_exits_2(monkeypatch, capsys):
    monkeypatch.delenv("SMSGW_BRIDGE_API_URL", raising=False)
    assert (
        cli.main(
            ["doctor", "--api-url", "http://example.com", "--device-key", "k", "--driver", "modem"]
        )
        == 2
    )
    assert "FAIL  config: api_url must start with https://" in capsys.readouterr().out


@pytest.fixture
def smsgate_app():
    app = FakeSmsGateApp(sims=2)
    yield app
    app.close()


def smsgate_options(app: FakeSmsGateApp, password: str = PASSWORD) -> list[str]:
    options = {"url": app.url, "username": USERNAME, "password": password}
    options["signing_key"] = SIGNING_KEY
    return [arg for key, value in options.items() for arg in ("--driver-option", f"{key}={value}")]


def test_an_smsgate_phone_is_checked_without_touching_its_webhooks(doctor, smsgate_app):
    code, lines = doctor(*smsgate_options(smsgate_app), phone="smsgate")
    assert code == 0, lines
    assert (
        line(lines, "phone (smsgate)")
        == "OK    phone (smsgate): answers; 2 SIM lines, battery 64 %"
    )
    assert smsgate_app.webhooks == {}, "a running bridge's webhooks stay as they are"
    assert not any(text[6:].startswith("modem") for text in lines)


def test_an_smsgate_phone_refusing_the_password_fails_with_the_fix(doctor, smsgate_app):
    code, lines = doctor(*smsgate_options(smsgate_app, password="wrong"), phone="smsgate")
    assert code == 1
    assert "refused the username and password" in line(lines, "phone (smsgate)")


def test_a_termux_phone_without_termux_api_fails_with_the_fix(doctor, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no termux-* command
    code, lines = doctor(
        "--driver-option", f"state_file={tmp_path / 'cursor.json'}", phone="termux"
    )
    assert code == 1
    assert "pkg install termux-api" in line(lines, "phone (termux)")


def test_a_termux_phone_is_read_and_its_inbox_cursor_left_unsaved(doctor, monkeypatch, tmp_path):
    FakeTermuxApi(tmp_path, monkeypatch)
    state = tmp_path / "cursor.json"
    code, lines = doctor("--driver-option", f"state_file={state}", phone="termux")
    assert code == 0, lines
    assert line(lines, "phone (termux)").startswith("OK    phone (termux): answers; 1 SIM line")
    assert "battery 87 %" in line(lines, "phone (termux)")
    assert not state.exists(), "the bridge's first run still takes the inbox as history"
