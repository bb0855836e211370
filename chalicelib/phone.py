"""Mauritanian phone numbers, exactly as seed 000 defines them.

Accepted: +222XXXXXXXX, 222XXXXXXXX or XXXXXXXX, where the 8-digit local number starts
with 2, 3 or 4. Everything is normalised to +222XXXXXXXX. The rules are the seed's own,
so they are written out here rather than taken from a numbering-plan library.
"""

from __future__ import annotations

import re

from .errors import ValidationError
from .wire.protocol import operator_of

__all__ = ["mask", "normalize", "operator_of"]

COUNTRY_CODE = "222"
REGION = "MR"
_LOCAL = re.compile(r"[234][0-9]{7}")


def normalize(raw, field: str = "phoneNumber") -> str:
    """Return +222XXXXXXXX or raise a 400 naming what is wrong with ``raw``."""
    problem = _problem(raw)
    if problem:
        raise ValidationError.field(field, problem)
    return "+" + COUNTRY_CODE + raw[-8:]


def _problem(raw) -> str | None:
    if raw is None or raw == "":
        return "is required"
    if not isinstance(raw, str):
        return "must be a string such as +22238089336"
    if any(c.isspace() for c in raw):
        return "spaces are not allowed"
    if "-" in raw:
        return "dashes are not allowed"
    digits = raw[1:] if raw.startswith("+") else raw
    if not digits.isdigit() or not digits.isascii():
        return "must contain only digits, with an optional leading +"
    if raw.startswith("+") and not digits.startswith(COUNTRY_CODE):
        return "not a valid Mauritanian number: the country code must be +222"
    if len(digits) == 11 and digits.startswith(COUNTRY_CODE):
        local = digits[3:]
    elif len(digits) == 8 and not raw.startswith("+"):
        local = digits
    else:
        return "wrong length: use +222XXXXXXXX, 222XXXXXXXX or an 8-digit local number"
    if not _LOCAL.fullmatch(local):
        return "the 8-digit local number must start with 2, 3 or 4"
    return None


def mask(number: str) -> str:
    """A number fit for a log line: +222****9336."""
    return number[:4] + "****" + number[-4:]
