"""SMS PDUs (3GPP TS 23.040) for a modem in PDU mode (AT+CMGF=0).

Encodes the SMS-SUBMIT PDUs that AT+CMGS takes and decodes what the modem hands back:
SMS-DELIVER (AT+CMGR, AT+CMGL) and SMS-STATUS-REPORT (+CDS).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

from chalicelib.wire.sms_encoding import GSM7, UCS2, gsm7_decode, gsm7_encode, split

EIGHT_BIT = "8-bit"

# First-octet bits
_MTI_MASK = 0x03
_MTI_DELIVER = 0x00
_MTI_SUBMIT = 0x01
_MTI_STATUS_REPORT = 0x02
_STATUS_REPORT_REQUEST = 0x20  # TP-SRR in SMS-SUBMIT
_USER_DATA_HEADER = 0x40  # TP-UDHI

# Type of address
_INTERNATIONAL = 0x91
_UNKNOWN_NUMBERING = 0x81
_TON_INTERNATIONAL = 0b001
_TON_ALPHANUMERIC = 0b101

_DCS = {GSM7: 0x00, UCS2: 0x08}
_IEI_CONCAT_8BIT = 0x00
_IEI_CONCAT_16BIT = 0x08
_BCD_DIGITS = "0123456789*#abc"


class PduError(ValueError):
    """A PDU that cannot be built or read."""


class SubmitPdu(NamedTuple):
    hex: str  # starts with "00": no SMSC given, the modem uses the SIM's
    tpdu_length: int  # octets after the SMSC part: the length AT+CMGS wants


@dataclass(frozen=True)
class Concat:
    """Where one part sits in a concatenated SMS."""

    reference: int
    total: int
    sequence: int  # 1-based


@dataclass(frozen=True)
class Deliver:
    """An SMS-DELIVER: one SMS, or one part of a long one, as received."""

    sender: str  # "+222..." when international, digits otherwise, or an alphanumeric name
    timestamp: datetime  # service centre time stamp, timezone-aware
    text: str  # 8-bit data is given as Latin-1 text
    encoding: str  # GSM7, UCS2 or EIGHT_BIT
    concat: Concat | None = None


@dataclass(frozen=True)
class StatusReport:
    """An SMS-STATUS-REPORT for a message sent with a status report request."""

    reference: int  # TP-MR the modem returned in +CMGS
    recipient: str
    status: int  # TP-ST
    service_centre_time: datetime
    discharge_time: datetime

    @property
    def delivered(self) -> bool:
        return self.status < 0x20

    @property
    def final(self) -> bool:
        """False while the service centre is still trying (0x20..0x3F)."""
        return not 0x20 <= self.status < 0x40

    def describe(self) -> str:
        return f"status 0x{self.status:02X}: {_status_text(self.status)}"


# ----------------------------------------------------------------------------- encoding


def encode_submit(
    to: str, text: str, *, status_report: bool = False, concat_reference: int = 0
) -> list[SubmitPdu]:
    """The SMS-SUBMIT PDUs sending ``text`` to ``to``: one, or one per concatenated part.

    ``concat_reference`` (0..255) ties the parts together on the recipient's phone.
    """
    encoding, parts = split(text)
    destination = _encode_address(to)
    headers = _concat_headers(concat_reference, len(parts))
    return [
        _encode_one_submit(destination, encoding, part, header, status_report)
        for part, header in zip(parts, headers, strict=True)
    ]


def _concat_headers(reference: int, total: int) -> list[bytes]:
    if total == 1:
        return [b""]
    if not 0 <= reference <= 0xFF:
        raise PduError(f"concatenation reference {reference} does not fit in one octet")
    return [
        bytes([5, _IEI_CONCAT_8BIT, 3, reference, total, sequence])
        for sequence in range(1, total + 1)
    ]


def _encode_one_submit(
    destination: bytes, encoding: str, text: str, header: bytes, status_report: bool
) -> SubmitPdu:
    first_octet = _MTI_SUBMIT
    if status_report:
        first_octet |= _STATUS_REPORT_REQUEST
    if header:
        first_octet |= _USER_DATA_HEADER
    user_data_length, user_data = _encode_user_data(encoding, text, header)
    message_reference = 0  # the modem assigns the real one
    protocol_identifier = 0
    tpdu = (
        bytes([first_octet, message_reference])
        + destination
        + bytes([protocol_identifier, _DCS[encoding], user_data_length])
        + user_data
    )
    return SubmitPdu("00" + tpdu.hex().upper(), len(tpdu))


def _encode_address(number: str) -> bytes:
    international = number.startswith("+")
    digits = number[1:] if international else number
    if not re.fullmatch(r"[0-9]{1,20}", digits):
        raise PduError(f"{number!r} is not a phone number")
    type_of_address = _INTERNATIONAL if international else _UNKNOWN_NUMBERING
    return bytes([len(digits), type_of_address]) + _swap_semi_octets(digits)


def _swap_semi_octets(digits: str) -> bytes:
    padded = digits + "F" * (len(digits) % 2)
    return bytes.fromhex("".join(padded[i + 1] + padded[i] for i in range(0, len(padded), 2)))


def _encode_user_data(encoding: str, text: str, header: bytes) -> tuple[int, bytes]:
    """TP-UDL and TP-UD; for GSM-7 the length counts septets, header included."""
    if encoding == UCS2:
        user_data = header + text.encode("utf-16-be", "surrogatepass")
        return len(user_data), user_data
    header_septets, fill_bits = _header_layout(len(header))
    septets = gsm7_encode(text)
    return header_septets + len(septets), header + pack_septets(septets, fill_bits)


def _header_layout(header_octets: int) -> tuple[int, int]:
    """(septets the UDH takes, fill bits) so GSM-7 text starts on a septet boundary."""
    fill_bits = (7 - header_octets * 8 % 7) % 7
    return (header_octets * 8 + fill_bits) // 7, fill_bits


_CR = 0x0D


def pack_septets(septets: list[int], fill_bits: int = 0) -> bytes:
    """Pack septets least significant bit first, after ``fill_bits`` zero bits.

    When the last octet would keep 7 spare bits, they hold <CR> (TS 23.038 §6.1.2.3.1):
    zeros there would read as a trailing '@' to a receiver counting septets from octets.
    """
    value = 0
    for position, septet in enumerate(septets):
        value |= septet << (fill_bits + 7 * position)
    bit_count = fill_bits + 7 * len(septets)
    if bit_count % 8 == 1:
        value |= _CR << bit_count
    return value.to_bytes((bit_count + 7) // 8, "little")


def unpack_septets(data: bytes, count: int, fill_bits: int = 0) -> list[int]:
    if count < 0 or fill_bits + 7 * count > 8 * len(data):
        raise PduError(f"{len(data)} octets cannot hold {count} septets")
    value = int.from_bytes(data, "little") >> fill_bits
    return [(value >> (7 * position)) & 0x7F for position in range(count)]


# ----------------------------------------------------------------------------- decoding


def decode(hex_pdu: str, tpdu_length: int | None = None) -> Deliver | StatusReport:
    """Read an SMS-DELIVER or SMS-STATUS-REPORT as printed by the modem.

    ``tpdu_length`` is the length the modem printed with it (+CMGR, +CMGL, +CDS): when the
    PDU is exactly that long it has no SMSC prefix, which some modems leave out of +CDS.
    """
    try:
        data = bytes.fromhex(hex_pdu.strip())
    except ValueError:
        raise PduError(f"not a hexadecimal PDU: {hex_pdu!r}") from None
    reader = _Reader(data)
    if tpdu_length is None or len(data) > tpdu_length:
        reader.take(reader.octet())  # SMSC address
    first_octet = reader.octet()
    message_type = first_octet & _MTI_MASK
    if message_type == _MTI_DELIVER:
        return _decode_deliver(first_octet, reader)
    if message_type == _MTI_STATUS_REPORT:
        return _decode_status_report(reader)
    raise PduError(f"message type {message_type} is neither SMS-DELIVER nor SMS-STATUS-REPORT")


def join_parts(texts: list[str]) -> str:
    """Concatenate decoded parts, mending a surrogate pair a sender split between two."""
    return "".join(texts).encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


class _Reader:
    def __init__(self, data: bytes):
        self._data = data
        self._position = 0

    def octet(self) -> int:
        return self.take(1)[0]

    def take(self, count: int) -> bytes:
        if self._position + count > len(self._data):
            raise PduError("PDU ends too early")
        chunk = self._data[self._position : self._position + count]
        self._position += count
        return chunk

    def rest(self) -> bytes:
        return self.take(len(self._data) - self._position)


def _decode_deliver(first_octet: int, reader: _Reader) -> Deliver:
    sender = _decode_address(reader)
    reader.octet()  # TP-PID
    data_coding = reader.octet()
    timestamp = _decode_timestamp(reader.take(7))
    user_data_length = reader.octet()
    encoding = _alphabet(data_coding)
    header, text = _decode_user_data(
        reader.rest(), user_data_length, encoding, bool(first_octet & _USER_DATA_HEADER)
    )
    return Deliver(sender, timestamp, text, encoding, _concat_from_header(header))


def _decode_status_report(reader: _Reader) -> StatusReport:
    reference = reader.octet()
    recipient = _decode_address(reader)
    service_centre_time = _decode_timestamp(reader.take(7))
    discharge_time = _decode_timestamp(reader.take(7))
    status = reader.octet()
    return StatusReport(reference, recipient, status, service_centre_time, discharge_time)


def _decode_address(reader: _Reader) -> str:
    semi_octets = reader.octet()
    type_of_address = reader.octet()
    raw = reader.take((semi_octets + 1) // 2)
    type_of_number = (type_of_address >> 4) & 0x07
    if type_of_number == _TON_ALPHANUMERIC:
        return gsm7_decode(unpack_septets(raw, semi_octets * 4 // 7))
    digits = "".join(
        _BCD_DIGITS[nibble]
        for octet in raw
        for nibble in (octet & 0x0F, octet >> 4)
        if nibble < len(_BCD_DIGITS)
    )
    return ("+" if type_of_number == _TON_INTERNATIONAL else "") + digits[:semi_octets]


def _decode_timestamp(raw: bytes) -> datetime:
    year, month, day, hour, minute, second = (_swapped_decimal(octet) for octet in raw[:6])
    zone = raw[6]
    quarters = (zone & 0x07) * 10 + (zone >> 4)
    offset = timedelta(minutes=15 * quarters) * (-1 if zone & 0x08 else 1)
    century = 1900 if year >= 90 else 2000  # 23.040 has two-digit years
    try:
        return datetime(century + year, month, day, hour, minute, second, tzinfo=timezone(offset))
    except ValueError as error:
        raise PduError(f"bad service centre time stamp {raw.hex()}: {error}") from None


def _swapped_decimal(octet: int) -> int:
    return (octet & 0x0F) * 10 + (octet >> 4)


def _alphabet(data_coding: int) -> str:
    """Character set of TP-DCS (TS 23.038 section 4)."""
    group = data_coding >> 4
    if group <= 0x07:  # general data coding, with or without automatic deletion
        if data_coding & 0x20:  # compressed: not supported, hand the octets over as they are
            return EIGHT_BIT
        return {1: EIGHT_BIT, 2: UCS2}.get((data_coding >> 2) & 0x03, GSM7)
    if group == 0x0E:  # message waiting indication, UCS-2
        return UCS2
    if group == 0x0F:  # data coding / message class
        return EIGHT_BIT if data_coding & 0x04 else GSM7
    return GSM7


def _decode_user_data(
    user_data: bytes, user_data_length: int, encoding: str, has_header: bool
) -> tuple[bytes, str]:
    header = user_data[: 1 + user_data[0]] if has_header and user_data else b""
    if encoding == GSM7:
        header_septets, fill_bits = _header_layout(len(header))
        septets = unpack_septets(
            user_data[len(header) :], user_data_length - header_septets, fill_bits
        )
        return header, gsm7_decode(septets)
    body = user_data[len(header) : user_data_length]
    if encoding == UCS2:
        return header, body[: len(body) // 2 * 2].decode("utf-16-be", "surrogatepass")
    return header, body.decode("latin-1")


def _concat_from_header(header: bytes) -> Concat | None:
    position = 1
    while position + 2 <= len(header):
        identifier, length = header[position], header[position + 1]
        value = header[position + 2 : position + 2 + length]
        position += 2 + length
        concat = _concat_from_element(identifier, value)
        if concat:
            return concat
    return None


def _concat_from_element(identifier: int, value: bytes) -> Concat | None:
    if identifier == _IEI_CONCAT_8BIT and len(value) == 3:
        concat = Concat(value[0], value[1], value[2])
    elif identifier == _IEI_CONCAT_16BIT and len(value) == 4:
        concat = Concat(value[0] << 8 | value[1], value[2], value[3])
    else:
        return None
    # 23.040: a receiver ignores a concatenation element with impossible numbers
    return concat if 0 < concat.sequence <= concat.total else None


_STATUS_TEXTS = {
    0x00: "received by the recipient",
    0x01: "forwarded, delivery not confirmed",
    0x02: "replaced by the service centre",
    0x41: "incompatible destination",
    0x42: "connection rejected by the recipient",
    0x43: "recipient not obtainable",
    0x46: "validity period expired",
    0x47: "deleted by the sender",
    0x48: "deleted by the service centre",
    0x60: "congestion",
    0x61: "recipient busy",
    0x62: "no response from the recipient",
}


def _status_text(status: int) -> str:
    if status in _STATUS_TEXTS:
        return _STATUS_TEXTS[status]
    if status < 0x20:
        return "delivered"
    if status < 0x40:
        return "temporary error, service centre still trying"
    if status < 0x60:
        return "permanent error"
    return "temporary error, service centre stopped trying"
