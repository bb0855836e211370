"""The bridge's settings: defaults, then a TOML file, then SMSGW_BRIDGE_* variables, then flags.

Every option is defined once, in BridgeConfig, with its meaning; ``--help`` is generated
from it. The file format and the precedence are described in EPILOG.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalicelib.wire import protocol

from . import __version__

ENV_PREFIX = "SMSGW_BRIDGE_"

EPILOG = f"""\
Every option can be given in three places; a flag wins over the environment
({ENV_PREFIX}<OPTION>, e.g. {ENV_PREFIX}API_URL), which wins over the --config file.
The file is TOML with the option names as keys and a [driver] table for the driver:

    api_url = "https://sms.example.com"
    device_key = "..."            # or {ENV_PREFIX}DEVICE_KEY, kept out of `ps`
    sends_per_minute = 4

    [driver]
    name = "modem"                # the driver; its other keys are the driver's options
    port = "/dev/ttyUSB2"
    pin = "1234"

Driver options are the fields of the Options class in device_bridge/drivers/<driver>.py
(for example modem: port, baudrate, pin; simulator: outbox, inbox, send_delay).

A SIM bank (a modem pool, several phones) is one bridge with a [[line]] table per line
instead of the [driver] table: each line has its own driver and number, and may set its
own pace and SIM guard (the options marked [per line]; the top-level value is the
default of every line). Lines send in parallel; one failing line never stops the others.

    [[line]]
    number = "+22238000001"
    sends_per_minute = 4
    max_per_day = 300             # the SIM guard: carriers block SIMs past such caps
    [line.driver]
    name = "modem"
    port = "/dev/serial/by-id/usb-Quectel-if02-port0"

    [[line]]
    number = "+22244000002"
    operator = "mauritel"         # where its prefix would name the wrong operator
    [line.driver]
    name = "modem"
    port = "/dev/serial/by-id/usb-Huawei-if00-port0"

AWS credentials: with aws_credentials = "device" the bridge needs nothing but its device
key: it asks the API for short-lived credentials limited to its queues (and their URLs
and region), again before they expire. With "environment", boto3 reads credentials and
region from the standard AWS variables and files. AWS_ENDPOINT_URL points both at the
local stack.

SIGTERM or SIGINT stops the bridge cleanly: the SMS being sent is finished, the
others go back to the queue at once.
"""


class ConfigError(ValueError):
    """The configuration is incomplete or invalid; the message says which option."""


@dataclass(frozen=True)
class LineSpec:
    """One [[line]] of a SIM bank: its driver, its number, and its per-line settings."""

    slot: int
    number: str
    driver: str
    driver_options: dict
    operator: str | None = None
    settings: dict = field(default_factory=dict)  # per-line options given in its table

    @property
    def line(self) -> protocol.Line:
        return protocol.Line(self.slot, self.number, self.operator)


def parse_lines(raw: str) -> tuple[protocol.Line, ...]:
    """'+22238000001,+22244000002@mauritel' -> lines in slots 1 and 2."""
    lines = []
    for slot, item in enumerate((part.strip() for part in raw.split(",") if part.strip()), 1):
        number, _, operator = item.partition("@")
        if operator and operator.lower() not in protocol.OPERATORS:
            raise ConfigError(
                f"lines: operator {operator!r} is not one of {', '.join(protocol.OPERATORS)}"
            )
        lines.append(protocol.Line(slot, number, operator.lower() or None))
    return tuple(lines)


def parse_bool(raw: Any) -> bool:
    """true/false, 1/0, yes/no, on/off."""
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", ""):
        return False
    raise ValueError(raw)


def _default_journal() -> str:
    state_home = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return str(Path(state_home) / "chinqit-bridge" / "journal.sqlite3")


def _option(
    help: str,
    default: Any = dataclasses.MISSING,
    parse: Callable = str,
    low: float | None = None,
    high: float | None = None,
    secret: bool = False,
    default_factory: Any = dataclasses.MISSING,
    per_line: bool = False,
):
    if per_line:
        help += " [per line]"
    metadata = {"help": help, "parse": parse, "low": low, "high": high, "per_line": per_line}
    return field(
        default=default, default_factory=default_factory, metadata=metadata, repr=not secret
    )


@dataclass(frozen=True)
class BridgeConfig:
    api_url: str = _option("Base URL of the gateway API, e.g. https://sms.example.com (required).")
    device_key: str = _option(
        "Device key issued by the operator tool, sent as X-Device-Key (required). Prefer "
        "the config file or SMSGW_BRIDGE_DEVICE_KEY: command lines are visible in `ps`.",
        secret=True,
    )
    driver: str = _option(
        "Phone driver: modem (GSM modem on a serial port), termux (Android phone, in "
        "Termux), smsgate (the SMSGate Android app's local server) or simulator (files, "
        "for development) (required, unless the file has [[line]] tables).",
        "",
    )
    aws_credentials: str = _option(
        "Where the AWS credentials come from: device (from the API, for the device key: "
        "short-lived, limited to this device's queues, which the API names too) or "
        "environment (boto3's usual variables and files, with the queues below; needed "
        "against a gateway API 1.0).",
        "device",
        str.lower,
    )
    lines: tuple = _option(
        "This device's SIM lines, slot 1 first, comma separated: each a number, or "
        "number@operator where its prefix would name the wrong operator, e.g. "
        "+22238000001,+22244000002@mauritel. Reported in the heartbeat; empty: not reported.",
        (),
        lambda raw: parse_lines(raw) if isinstance(raw, str) else tuple(raw),
    )
    outbound_queue: str = _option("SQS queue (name or URL) of bulk SMS.", "chinqit-dev-outbound")
    priority_queue: str = _option(
        "SQS queue (name or URL) of OTP SMS; always sent before bulk SMS.",
        "chinqit-dev-outbound-priority",
    )
    journal: str = _option(
        "SQLite file remembering what was handed to the network and what the API has not "
        "acknowledged yet. Keep it across restarts: it is what prevents duplicate SMS.",
        default_factory=_default_journal,
    )
    sends_per_minute: float = _option(
        "SMS a line sends per minute at most; carriers block SIMs that send faster.",
        6.0,
        float,
        low=0.01,
        per_line=True,
    )
    send_burst: int = _option(
        "SMS that may go back to back after an idle spell before the per-minute pace "
        "applies; 1 spaces every send evenly.",
        1,
        int,
        low=1,
        per_line=True,
    )
    max_attempts: int = _option(
        "Tries of an SMS the phone refuses with a temporary error before it is failed.",
        3,
        int,
        low=1,
    )
    retry_delay: float = _option(
        "Seconds before the second try of a refused SMS; doubled for each further try.",
        5.0,
        float,
        low=0,
    )
    heartbeat_interval: float = _option(
        "Seconds between heartbeats (driver, signal, battery) posted to the API.",
        60.0,
        float,
        low=1,
    )
    wait_time_seconds: int = _option(
        "SQS long-polling wait (0-20 s); 20 keeps an idle bridge to 3 requests a minute per queue.",
        20,
        int,
        low=0,
        high=20,
    )
    visibility_timeout: int = _option(
        "Seconds SQS hides a received message from other bridges; the bridge extends it "
        "while the message is in hand and releases it at shutdown.",
        60,
        int,
        low=1,
        high=43200,
    )
    max_segments: int = _option(
        "Longest SMS sent, in segments (the API's SMSGW_MAX_SEGMENTS): a longer text is "
        "reported failed, never sent; a line with a lower value leaves longer texts to "
        "the other lines.",
        10,
        int,
        low=1,
        high=255,
        per_line=True,
    )
    max_per_minute: int = _option(
        "SIM guard: SMS parts a line sends in any 60 s at most (0: no cap).",
        0,
        int,
        low=0,
        per_line=True,
    )
    max_per_hour: int = _option(
        "SIM guard: SMS parts a line sends in any hour at most (0: no cap).",
        0,
        int,
        low=0,
        per_line=True,
    )
    max_per_day: int = _option(
        "SIM guard: SMS parts a line sends in any 24 h at most (0: no cap).",
        0,
        int,
        low=0,
        per_line=True,
    )
    max_recipients_per_day: int = _option(
        "SIM guard: different numbers a line writes to in any 24 h at most (0: no cap).",
        0,
        int,
        low=0,
        per_line=True,
    )
    max_recipients_per_month: int = _option(
        "SIM guard: different numbers a line writes to in any 30 days at most (0: no cap).",
        0,
        int,
        low=0,
        per_line=True,
    )
    warmup_days: float = _option(
        "SIM guard: days a new SIM takes to reach max_per_day, from warmup_per_day on its "
        "first day, rising evenly (0: no warm-up; needs max_per_day).",
        0.0,
        float,
        low=0,
        per_line=True,
    )
    warmup_per_day: int = _option(
        "SIM guard: SMS parts a new SIM sends on its first day of warm-up.",
        20,
        int,
        low=1,
        per_line=True,
    )
    max_buffered: int = _option(
        "Messages taken from each queue ahead of sending, per line; more is faster, "
        "fewer leaves more work to the other bridges on the same queue. Never more than "
        "the lines send in 20 s at their sends_per_minute (2 for one line at 6 a minute).",
        10,
        int,
        low=1,
        high=100,
    )
    poll_interval: float = _option(
        "Seconds between two reads of the phone for received SMS and delivery reports when idle.",
        0.5,
        float,
        low=0.001,
    )
    api_timeout: float = _option(
        "Seconds an API call may take before the API counts as unreachable.", 10.0, float, low=0.1
    )
    backoff_max: float = _option(
        "Longest pause, in seconds, between retries while SQS, the API or the phone is "
        "unreachable (pauses start at 1 s and double).",
        60.0,
        float,
        low=1,
    )
    journal_retention_days: float = _option(
        "Days settled messages stay in the journal; keep it above the queue's retention "
        "(4 days) so a late redelivery is still recognised.",
        7.0,
        float,
        low=0.001,
    )
    log_level: str = _option(
        "DEBUG, INFO, WARNING or ERROR. SMS texts and the device key are never logged.",
        "INFO",
        str.upper,
    )
    allow_insecure_http: bool = _option(
        "Accept an http:// api_url (the device key would travel in clear): for a local "
        "test stack only. Without it only https:// is accepted.",
        False,
        parse_bool,
    )
    ca_bundle: str = _option(
        "PEM file of the certificate authorities to trust for the API and AWS (a private "
        "CA); empty: the system's. TLS certificates are always verified.",
        "",
    )
    log_json: bool = _option(
        "Log one JSON object per line (ts, level, logger, message) instead of text, for "
        "log collectors.",
        False,
        parse_bool,
    )
    # Options of the chosen driver (see its module's Options): the [driver] table of the
    # config file, then SMSGW_BRIDGE_DRIVER_OPTION_<NAME> variables, then --driver-option flags.
    driver_options: dict = field(default_factory=dict)
    # The [[line]] tables of a SIM bank, slot order; empty: one driver (above) for the device.
    bank: tuple[LineSpec, ...] = ()

    @property
    def queues(self) -> dict[str, str]:
        return {"priority": self.priority_queue, "bulk": self.outbound_queue}

    def for_line(self, spec: LineSpec | None) -> BridgeConfig:
        """These settings with ``spec``'s per-line options applied."""
        return self if spec is None else dataclasses.replace(self, **spec.settings)


OPTIONS = [f for f in dataclasses.fields(BridgeConfig) if "help" in f.metadata]
PER_LINE = {f.name: f for f in OPTIONS if f.metadata["per_line"]}
LINE_KEYS = ("number", "operator", "slot", "driver")
DRIVER_OPTION_PREFIX = "SMSGW_BRIDGE_DRIVER_OPTION_"
REQUIRED = [
    f.name
    for f in OPTIONS
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
]
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
CREDENTIAL_SOURCES = ("device", "environment")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chinqit-bridge",
        description="Chinqit device bridge: takes outbound SMS from SQS, sends them with a "
        "phone or modem, and reports statuses and received SMS to the API.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--config", metavar="FILE", type=Path, help="TOML config file (format below)"
    )
    for option in OPTIONS:
        default = _describe_default(option)
        parser.add_argument(
            _flag(option.name),
            dest=option.name,
            metavar=option.name.upper(),
            nargs="?" if option.metadata["parse"] is parse_bool else None,
            const="true" if option.metadata["parse"] is parse_bool else None,
            help=f"{option.metadata['help']} [env {_env_name(option.name)}"
            f"{'; default ' + default if default else ''}]",
        )
    parser.add_argument(
        "--driver-option",
        dest="driver_option",
        metavar="KEY=VALUE",
        action="append",
        help="an option of the driver, e.g. port=/dev/ttyUSB2 "
        "(repeatable; overrides the config file's [driver] table)",
    )
    return parser


def _describe_default(option) -> str:
    if option.default_factory is not dataclasses.MISSING:
        return str(option.default_factory())
    return "" if option.default is dataclasses.MISSING else str(option.default)


def load(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ
) -> BridgeConfig:
    """Build the configuration from the file, the environment and the flags, in that order."""
    flags = vars(parser().parse_args(argv))
    values, driver_options = _from_file(flags.pop("config", None))
    values.update(
        {o.name: environ[_env_name(o.name)] for o in OPTIONS if _env_name(o.name) in environ}
    )
    driver_options.update(
        {
            name.removeprefix(DRIVER_OPTION_PREFIX).lower(): value
            for name, value in environ.items()
            if name.startswith(DRIVER_OPTION_PREFIX)
        }
    )
    driver_options.update(_driver_flags(flags.pop("driver_option", [])))
    values.update(flags)
    return _build(values, driver_options)


SECRET_KEYS = ("device_key", "pin", "password", "secret", "token")


def _check_private(path: Path, values: dict) -> None:
    """Refuse a config file holding a secret (device key, SIM PIN...) that others can read."""
    if os.name != "posix" or not _holds_secret(values):
        return
    mode = os.stat(path).st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(
            f"config file {path} holds a secret (mode {mode:o}) and is readable by other "
            f"users; run chmod 600 {path}"
        )


def _holds_secret(value: Any) -> bool:
    if isinstance(value, dict):
        return any(
            (key in SECRET_KEYS and item not in ("", None)) or _holds_secret(item)
            for key, item in value.items()
        )
    return isinstance(value, list) and any(_holds_secret(item) for item in value)


def _from_file(path: Path | None) -> tuple[dict, dict]:
    if path is None:
        return {}, {}
    try:
        with open(path, "rb") as file:
            values = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot read config file {path}: {error}") from None
    _check_private(path, values)
    driver_options = {}
    if isinstance(values.get("driver"), dict):
        driver_options = dict(values.pop("driver"))
        if "name" in driver_options:
            values["driver"] = driver_options.pop("name")
    if "line" in values:
        values["bank"] = _bank(values.pop("line"))
    unknown = set(values) - {o.name for o in OPTIONS} - {"bank"}
    if unknown:
        raise ConfigError(f"unknown option(s) in {path}: {', '.join(sorted(unknown))}")
    return values, driver_options


def _bank(tables: Any) -> tuple[LineSpec, ...]:
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError("line must be an array of tables: [[line]]")
    if not 1 <= len(tables) <= protocol.MAX_LINES:
        raise ConfigError(f"a bridge drives 1 to {protocol.MAX_LINES} [[line]] tables")
    specs = [_line_spec(position, table) for position, table in enumerate(tables, 1)]
    slots = [spec.slot for spec in specs]
    if len(set(slots)) != len(slots):
        raise ConfigError("two [[line]] tables have the same slot")
    return tuple(sorted(specs, key=lambda spec: spec.slot))


def _line_spec(position: int, table: dict) -> LineSpec:
    where = f"[[line]] {position}"
    unknown = set(table) - set(LINE_KEYS) - set(PER_LINE)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    number = str(table.get("number", "")).strip()
    if not number:
        raise ConfigError(f"{where}: number is required (the SIM's number, e.g. +22238000001)")
    driver = table.get("driver")
    if not isinstance(driver, dict) or not str(driver.get("name", "")).strip():
        raise ConfigError(
            f'{where}: a [line.driver] table with its name is required, e.g. name = "modem"'
        )
    driver_options = {key: value for key, value in driver.items() if key != "name"}
    operator = table.get("operator")
    if operator is not None and str(operator).lower() not in protocol.OPERATORS:
        raise ConfigError(
            f"{where}: operator {operator!r} is not one of {', '.join(protocol.OPERATORS)}"
        )
    slot = table.get("slot", position)
    if not isinstance(slot, int) or not 1 <= slot <= protocol.MAX_LINES:
        raise ConfigError(f"{where}: slot must be a whole number from 1 to {protocol.MAX_LINES}")
    settings = {
        name: _parse(PER_LINE[name], table[name], where) for name in PER_LINE if name in table
    }
    return LineSpec(
        slot,
        number,
        str(driver["name"]).strip(),
        driver_options,
        None if operator is None else str(operator).lower(),
        settings,
    )


def _driver_flags(pairs: list[str]) -> dict:
    options = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            raise ConfigError(f"--driver-option expects KEY=VALUE, got {pair!r}")
        options[key.strip()] = value
    return options


def _build(values: dict, driver_options: dict) -> BridgeConfig:
    bank = values.pop("bank", ())
    missing = [name for name in REQUIRED if not str(values.get(name, "")).strip()]
    if not bank and not str(values.get("driver", "")).strip():
        missing.append("driver")
    if missing:
        raise ConfigError(
            "missing required option(s): "
            + ", ".join(f"{name} ({_flag(name)} or {_env_name(name)})" for name in missing)
        )
    parsed = {
        option.name: _parse(option, values[option.name])
        for option in OPTIONS
        if option.name in values
    }
    if parsed.get("log_level", "INFO") not in LOG_LEVELS:
        raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}")
    if parsed.get("aws_credentials", "environment") not in CREDENTIAL_SOURCES:
        raise ConfigError(f"aws_credentials must be one of {', '.join(CREDENTIAL_SOURCES)}")
    url = str(parsed.get("api_url", ""))
    if not url.startswith("https://") and not (
        url.startswith("http://") and parsed.get("allow_insecure_http")
    ):
        raise ConfigError(
            f"api_url must start with https:// (got {url[:60]!r}); an http:// URL of a local "
            f"test stack needs allow_insecure_http (or {ENV_PREFIX}ALLOW_INSECURE_HTTP=true)"
        )
    if parsed.get("ca_bundle") and not os.path.isfile(parsed["ca_bundle"]):
        raise ConfigError(f"ca_bundle: {parsed['ca_bundle']} is not a file")
    if bank and (parsed.get("driver") or driver_options or parsed.get("lines")):
        raise ConfigError(
            "[[line]] tables replace driver, [driver] and lines: keep one or the other"
        )
    settings = BridgeConfig(**parsed, driver_options=driver_options, bank=bank)
    for spec in bank or [None]:
        _check_warmup(settings.for_line(spec), "" if spec is None else f"[[line]] {spec.slot}: ")
    return settings


def _check_warmup(settings: BridgeConfig, where: str) -> None:
    if settings.warmup_days and not settings.max_per_day:
        raise ConfigError(f"{where}warmup_days needs max_per_day (the cap the warm-up reaches)")


def _parse(option, raw, where: str = ""):
    meta = option.metadata
    name = f"{where}: {option.name}" if where else option.name
    try:
        value = meta["parse"](raw)
    except ConfigError:
        raise
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: {raw!r} is not a valid {meta['parse'].__name__}") from None
    if meta["low"] is not None and value < meta["low"]:
        raise ConfigError(f"{name} must be at least {meta['low']}")
    if meta["high"] is not None and value > meta["high"]:
        raise ConfigError(f"{name} must be at most {meta['high']}")
    return value
