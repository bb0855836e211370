"""``chinqit-bridge doctor``: checks a bridge host, one line per finding with a hint.

It reads the same configuration as the bridge (stop the bridge first: a modem's port
opens for one program at a time) and checks, in order: the serial ports and which answer
AT; for each configured modem its SIM (PIN), network registration and operator, signal
and SMS centre; each Android phone (SMSGate's API and credentials, Termux:API's commands)
with its SIM lines, signal and battery; the API and the device key; the AWS credentials
and the queues. It exits 1 when something prevents sending, 2 when the configuration
cannot be read, else 0.
"""

from __future__ import annotations

import glob
import os
import re
import sys
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import TextIO

import requests

from . import __version__, config, drivers
from .drivers.base import DriverError
from .serial_link import LinkError, SerialLink

AT_TIMEOUT = 2.0
NETWORK_TIMEOUT = 5.0
CANDIDATE_PORTS = ("/dev/serial/by-id/*", "/dev/ttyUSB*", "/dev/ttyACM*")
REGISTRATION = {
    "0": "not registered, not searching",
    "1": "registered, home network",
    "2": "searching",
    "3": "registration denied",
    "5": "registered, roaming",
}
WEAK_RSSI = 10  # +CSQ below this (about -93 dBm) loses SMS


@dataclass(frozen=True)
class Finding:
    level: str  # OK, WARN or FAIL
    check: str
    finding: str
    hint: str = ""

    def __str__(self) -> str:
        return f"{self.level:<4}  {self.check}: {self.finding}" + (
            f" - {self.hint}" if self.hint else ""
        )


def main(argv: Sequence[str], out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if "-h" in argv or "--help" in argv:
        out.write(__doc__ or "")
        out.write("\nOptions: those of chinqit-bridge (see chinqit-bridge --help).\n")
        return 0
    try:
        settings = config.load(list(argv))
    except config.ConfigError as error:
        print(Finding("FAIL", "config", str(error)), file=out)
        return 2
    print(f"chinqit-bridge doctor {__version__}", file=out)
    failed = False
    for finding in run(settings):
        print(finding, file=out, flush=True)
        failed = failed or finding.level == "FAIL"
    return 1 if failed else 0


def run(settings: config.BridgeConfig) -> Iterator[Finding]:
    modems = _modem_ports(settings)
    yield from _ports_found(modems)
    for port, options in modems:
        yield from _modem(port, options)
    for name, options in _drivers(settings):
        if name != "modem":  # a modem's port, SIM and network are checked above, AT by AT
            yield _phone(name, options)
    credentials = yield from _api(settings)
    yield from _queues(settings, credentials)


# ---------------------------------------------------------------------- modems


def _drivers(settings: config.BridgeConfig) -> list[tuple[str, dict]]:
    """(driver name, its options) of each configured line, or of the one phone."""
    return [(spec.driver, spec.driver_options) for spec in settings.bank] or [
        (settings.driver, settings.driver_options)
    ]


def _modem_ports(settings: config.BridgeConfig) -> list[tuple[str, dict]]:
    return [
        (str(o["port"]), o) for name, o in _drivers(settings) if name == "modem" and "port" in o
    ]


def _ports_found(modems: list[tuple[str, dict]]) -> Iterator[Finding]:
    configured = {os.path.realpath(port) for port, _ in modems}
    found = sorted({path for pattern in CANDIDATE_PORTS for path in glob.glob(pattern)})
    others = [path for path in found if os.path.realpath(path) not in configured]
    answering = [path for path in others if _answers_at(path)]
    if not found and not modems:
        yield Finding("OK", "serial ports", "none (no modem driver configured)")
        return
    yield Finding(  # each configured modem's own port is checked on its own line
        "OK",
        "serial ports",
        f"{len(found)} found"
        + (f"; not configured but answering AT: {', '.join(answering)}" if answering else ""),
    )


def _answers_at(port: str) -> bool:
    link = SerialLink(port, 115200, lambda lines: None)
    try:
        link.open()
        return link.command("AT", AT_TIMEOUT)[-1] == "OK"
    except Exception:  # noqa: BLE001 - any port that cannot be opened or read does not answer
        return False
    finally:
        link.close()


def _modem(port: str, options: dict) -> Iterator[Finding]:
    where = f"modem {port}"
    link = SerialLink(port, int(options.get("baudrate", 115200)), lambda lines: None)
    try:
        link.open()
    except Exception as error:  # noqa: BLE001 - pyserial raises several kinds
        busy = "lock" in str(error).lower() or "busy" in str(error).lower()
        yield Finding(
            "FAIL",
            where,
            f"cannot open ({error})",
            "stop the bridge first" if busy else "check the port and the dialout group",
        )
        return
    try:
        yield from _modem_state(link, where, options)
    except LinkError as error:
        yield Finding("FAIL", where, f"stopped answering ({error})", "replug or reset the modem")
    finally:
        link.close()


def _modem_state(link: SerialLink, where: str, options: dict) -> Iterator[Finding]:
    def ask(command: str, prefix: str, answered_by: str | None = None) -> str | None:
        lines = link.command(command, AT_TIMEOUT, answered_by=answered_by)
        return next(
            (line[len(prefix) :].strip() for line in lines if line.startswith(prefix)), None
        )

    try:
        link.command("AT", AT_TIMEOUT)
    except LinkError:
        yield Finding("FAIL", where, "does not answer AT", "try the modem's other ports")
        return
    yield Finding("OK", where, "answers AT")
    sim = ask("AT+CPIN?", "+CPIN:", answered_by="+CPIN:") or "unknown"
    if sim == "SIM PIN" and options.get("pin"):
        result = link.command(f'AT+CPIN="{options["pin"]}"', AT_TIMEOUT)[-1]
        sim = "READY" if result == "OK" else f"PIN refused ({result})"
    if sim != "READY":
        hint = {
            "SIM PIN": "set the modem's pin option",
            "SIM PUK": "unlock the SIM with its PUK in a phone",
        }.get(sim, "check the SIM and the pin option (never retry a wrong PIN)")
        yield Finding("FAIL", "SIM", sim, hint)
        return
    yield Finding("OK", "SIM", "ready")
    registration = (ask("AT+CREG?", "+CREG:") or "").split(",")
    state = registration[1].strip() if len(registration) > 1 else "?"
    operator = re.search(r'"([^"]*)"', ask("AT+COPS?", "+COPS:") or "")
    named = f" ({operator.group(1)})" if operator else ""
    if state in ("1", "5"):
        yield Finding("OK", "network", REGISTRATION[state] + named)
    else:
        yield Finding(
            "FAIL",
            "network",
            REGISTRATION.get(state, f"unknown registration {state}"),
            "check the antenna, the SIM's credit and that the operator accepts it",
        )
    rssi_text = (ask("AT+CSQ", "+CSQ:") or "99").split(",")[0]
    rssi = int(rssi_text) if rssi_text.isdigit() else 99
    if rssi == 99:
        yield Finding("WARN", "signal", "unknown", "check the antenna")
    else:
        level = "OK" if rssi >= WEAK_RSSI else "WARN"
        hint = "" if level == "OK" else "move the modem or add an antenna"
        yield Finding(level, "signal", f"{-113 + 2 * rssi} dBm (CSQ {rssi})", hint)
    centre = re.search(r'"([^"]*)"', ask("AT+CSCA?", "+CSCA:") or "")
    if centre and centre.group(1):
        yield Finding("OK", "SMS centre", centre.group(1))
    else:
        yield Finding(
            "FAIL", "SMS centre", "not set", 'set it: AT+CSCA="+222..." (ask the operator)'
        )


# ---------------------------------------------------------------------- phones


def _phone(name: str, options: dict) -> Finding:
    """An Android phone (SMSGate, Termux) or the simulator: reached, read, left as it was."""
    check = f"phone ({name})"
    try:
        driver = drivers.load(name, **options)
        info = driver.check()
    except ValueError as error:
        return Finding("FAIL", check, str(error), "fix the driver options in the config")
    except DriverError as error:
        return Finding("FAIL", check, str(error))
    lines = len(driver.sim_slots())
    read = [f"{lines} SIM line{'s' if lines > 1 else ''}"]
    if info.signal_percent is not None:
        read.append(f"signal {info.signal_percent} %")
    if info.battery_percent is not None:
        read.append(f"battery {info.battery_percent} %")
    return Finding("OK", check, "answers; " + ", ".join(read))


# ---------------------------------------------------------------------- API and AWS


def _api(settings: config.BridgeConfig) -> Generator[Finding, None, dict | None]:
    verify = settings.ca_bundle or True
    try:
        health = requests.get(
            settings.api_url.rstrip("/") + "/health", timeout=NETWORK_TIMEOUT, verify=verify
        )
    except requests.RequestException as error:
        yield Finding(
            "FAIL", "API", f"unreachable ({type(error).__name__})", "check api_url and the network"
        )
        return None
    level = "OK" if health.ok else "FAIL"
    yield Finding(level, "API", f"{settings.api_url} answers HTTP {health.status_code}")
    try:
        answer = requests.post(
            settings.api_url.rstrip("/") + "/device/credentials",
            json={},
            headers={"X-Device-Key": settings.device_key},
            timeout=NETWORK_TIMEOUT,
            verify=verify,
        )
    except requests.RequestException as error:
        yield Finding("FAIL", "device key", f"not checked ({type(error).__name__})")
        return None
    shown = settings.device_key[:4] + "…"
    if answer.status_code in (401, 403):
        yield Finding(
            "FAIL",
            "device key",
            f"{shown} refused (HTTP {answer.status_code})",
            "check device_key, or issue a new one",
        )
        return None
    if answer.status_code == 404 and settings.aws_credentials == "device":
        yield Finding(
            "FAIL",
            "device key",
            "the API gives no credentials (gateway 1.0)",
            'set aws_credentials = "environment"',
        )
        return None
    yield Finding("OK", "device key", f"{shown} accepted")
    return answer.json() if answer.ok else None


def _queues(settings: config.BridgeConfig, credentials: dict | None) -> Iterator[Finding]:
    import boto3
    from botocore.config import Config

    if settings.aws_credentials == "device":
        if credentials is None:
            yield Finding("FAIL", "AWS", "no credentials (the API did not give any)")
            return
        session = boto3.Session(
            aws_access_key_id=credentials["accessKeyId"],
            aws_secret_access_key=credentials["secretAccessKey"],
            aws_session_token=credentials.get("sessionToken"),
            region_name=credentials["region"],
        )
        names = credentials["queues"]
    else:
        session = boto3.Session()
        names = settings.queues
    client = session.client(
        "sqs",
        verify=settings.ca_bundle or None,
        config=Config(
            connect_timeout=NETWORK_TIMEOUT,
            read_timeout=NETWORK_TIMEOUT,
            retries={"max_attempts": 1},
        ),
    )
    for kind, name in names.items():
        try:
            url = (
                name
                if name.startswith(("https://", "http://"))
                else client.get_queue_url(QueueName=name)["QueueUrl"]
            )
            waiting = client.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]["ApproximateNumberOfMessages"]
        except Exception as error:  # noqa: BLE001 - every AWS failure is a finding
            yield Finding(
                "FAIL",
                f"queue {kind}",
                f"{name}: {type(error).__name__}: {error}"[:200],
                "check the AWS credentials, region and queue name",
            )
        else:
            yield Finding("OK", f"queue {kind}", f"{name} reachable, {waiting} waiting")
