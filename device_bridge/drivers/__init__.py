"""Phone drivers, chosen by name: ``load("modem", port="/dev/ttyUSB0")``."""
from __future__ import annotations

import importlib

from .base import Driver

# name -> module holding a ``create(**options) -> Driver`` factory; imported only when chosen
DRIVERS = {
    "modem": "device_bridge.drivers.modem",
    "termux": "device_bridge.drivers.termux",
    "simulator": "device_bridge.drivers.simulator",
}


def load(name: str, **options) -> Driver:
    """Build the driver called ``name`` with its options (see each module's Options)."""
    try:
        module = importlib.import_module(DRIVERS[name])
    except KeyError:
        raise ValueError(f"unknown driver {name!r}; choose one of {', '.join(DRIVERS)}") from None
    return module.create(**options)
