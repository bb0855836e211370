"""SMS text encoding: GSM 03.38 default alphabet, UCS-2 fallback, and segmentation.

Pure standard library and cheap to import: the API uses it to count segments, the device
bridge to build PDUs.
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7 = "GSM-7"
UCS2 = "UCS-2"

ESCAPE = 0x1B

# GSM 03.38 default alphabet, indexed by septet value; 0x1B is the escape to the extension
# table and never stands for a character of its own.
_BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_EXTENSION_TABLE = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}
_BASIC_SEPTETS = {char: septet for septet, char in enumerate(_BASIC_TABLE) if septet != ESCAPE}
_EXTENSION_SEPTETS = {char: septet for septet, char in _EXTENSION_TABLE.items()}

# (units in a single SMS, units per part of a concatenated SMS); parts lose room to the UDH
_LIMITS = {GSM7: (160, 153), UCS2: (70, 67)}


@dataclass(frozen=True)
class Analysis:
    encoding: str  # GSM7 or UCS2
    segments: int
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2


def is_gsm7(text: str) -> bool:
    return all(char in _BASIC_SEPTETS or char in _EXTENSION_SEPTETS for char in text)


def gsm7_encode(text: str) -> list[int]:
    """Septets of ``text``; extension characters become ESC + code."""
    septets = []
    for char in text:
        if char in _BASIC_SEPTETS:
            septets.append(_BASIC_SEPTETS[char])
        elif char in _EXTENSION_SEPTETS:
            septets += [ESCAPE, _EXTENSION_SEPTETS[char]]
        else:
            raise ValueError(f"{char!r} is not in the GSM 7-bit alphabet")
    return septets


def gsm7_decode(septets) -> str:
    chars = []
    escaped = False
    for septet in septets:
        if not 0 <= septet <= 0x7F:
            raise ValueError(f"{septet} is not a septet")
        if escaped:
            chars.append(_decode_escaped(septet))
            escaped = False
        elif septet == ESCAPE:
            escaped = True
        else:
            chars.append(_BASIC_TABLE[septet])
    return "".join(chars)


def _decode_escaped(septet: int) -> str:
    # 03.38: an unknown extension code shows the default-alphabet character, and ESC ESC
    # (reserved for a further table) shows a space.
    if septet == ESCAPE:
        return " "
    return _EXTENSION_TABLE.get(septet, _BASIC_TABLE[septet])


def split(text: str) -> tuple[str, list[str]]:
    """The encoding of ``text`` and the parts it is sent in (one part when it fits)."""
    encoding = GSM7 if is_gsm7(text) else UCS2
    cost = _gsm7_cost if encoding == GSM7 else _utf16_cost
    single_limit, part_limit = _LIMITS[encoding]
    if sum(map(cost, text)) <= single_limit:
        return encoding, [text]
    return encoding, _pack(text, cost, part_limit)


def analyze(text: str) -> Analysis:
    encoding, parts = split(text)
    cost = _gsm7_cost if encoding == GSM7 else _utf16_cost
    return Analysis(encoding, len(parts), sum(map(cost, text)))


def _pack(text: str, cost, limit: int) -> list[str]:
    # Characters are atomic here, so an escape pair or a surrogate pair never straddles parts.
    parts: list[str] = []
    current: list[str] = []
    used = 0
    for char in text:
        if used + cost(char) > limit:
            parts.append("".join(current))
            current, used = [], 0
        current.append(char)
        used += cost(char)
    parts.append("".join(current))
    return parts


def _gsm7_cost(char: str) -> int:
    return 2 if char in _EXTENSION_SEPTETS else 1


def _utf16_cost(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1
