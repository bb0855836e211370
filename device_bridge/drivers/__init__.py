"""Phone drivers, chosen by name: ``load("modem", port="/dev/ttyUSB0")``.

Each driver module defines an ``Options`` dataclass (its options, documented there) and
``create(**options)``. Options given as text (environment, command line) are converted
here to the types ``Options`` declares.
"""

from __future__ import annotations

import dataclasses
import importlib
import typing

from .base import Driver

# name -> module holding Options and create(); imported only when chosen
DRIVERS = {
    "modem": "device_bridge.drivers.modem",
    "termux": "device_bridge.drivers.termux",
    "simulator": "device_bridge.drivers.simulator",
    "smsgate": "device_bridge.drivers.smsgate",
}
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def load(name: str, **options) -> Driver:
    """Build the driver called ``name`` with its options; ValueError says what is wrong."""
    try:
        module = importlib.import_module(DRIVERS[name])
    except KeyError:
        raise ValueError(f"unknown driver {name!r}; choose one of {', '.join(DRIVERS)}") from None
    known = {f.name for f in dataclasses.fields(module.Options)}
    unknown = set(options) - known
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(sorted(unknown))} for driver {name}; "
            f"it takes {', '.join(sorted(known))}"
        )
    types = typing.get_type_hints(module.Options)
    return module.create(
        **{key: _convert(types[key], value, key) for key, value in options.items()}
    )


def _convert(kind, value, key: str):
    if not isinstance(value, str):
        return value
    kind = next((k for k in typing.get_args(kind) if k is not type(None)), kind)  # Optional[X] -> X
    if kind is bool:
        if value.lower() not in TRUE + FALSE:
            raise ValueError(f"driver option {key} must be true or false, not {value!r}")
        return value.lower() in TRUE
    if kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            raise ValueError(f"driver option {key} must be a number, not {value!r}") from None
    return value
