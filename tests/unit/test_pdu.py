from datetime import UTC, datetime, timedelta, timezone

import pytest

from chalicelib.wire.sms_encoding import GSM7, UCS2, gsm7_decode, gsm7_encode
from device_bridge import pdu
from device_bridge.pdu import (
    EIGHT_BIT,
    Concat,
    Deliver,
    PduError,
    StatusReport,
    decode,
    encode_submit,
    join_parts,
    pack_septets,
    unpack_septets,
)

SMSC = "07912232060000F0"  # +22236000000
TO = "+22238089336"
TO_ADDRESS = "0B912232089833F6"
SCTS = "52100221436500"  # 2025-01-20 12:34:56 +00:00
HELLOHELLO_PACKED = "E8329BFD4697D9EC37"  # the classic example of GSM-7 packing


def _deliver(
    first_octet: str,
    data_coding: str,
    user_data_length: int,
    user_data: str,
    sender: str = TO_ADDRESS,
    timestamp: str = SCTS,
) -> str:
    return (
        SMSC
        + first_octet
        + sender
        + "00"
        + data_coding
        + timestamp
        + f"{user_data_length:02X}"
        + user_data
    )


# ------------------------------------------------------------------------- septets


def test_pack_septets_known_vector():
    assert pack_septets(gsm7_encode("hellohello")).hex().upper() == HELLOHELLO_PACKED


def test_unpack_septets_known_vector():
    assert unpack_septets(bytes.fromhex(HELLOHELLO_PACKED), 10) == gsm7_encode("hellohello")


def test_pack_after_fill_bits():
    # after a 6-octet UDH one fill bit comes first: "A" (0x41) becomes 0x82
    assert pack_septets([0x41, 0x42], fill_bits=1) == bytes([0x82, 0x42])
    assert unpack_septets(bytes([0x82, 0x42]), 2, fill_bits=1) == [0x41, 0x42]


def test_unpack_refuses_too_short_data():
    with pytest.raises(PduError):
        unpack_septets(b"\x00", 2)


# ------------------------------------------------------------------------- SMS-SUBMIT


def test_submit_known_vector():
    # The widely published "hellohello" SMS-SUBMIT (0011000B916407281553F80000AA0A...) with
    # no validity period: first octet 01 instead of 11 and no VP octet.
    [submit] = encode_submit("+46708251358", "hellohello")
    assert submit.hex == "0001000B916407281553F800000A" + HELLOHELLO_PACKED
    assert submit.tpdu_length == 22
    assert submit.tpdu_length == len(submit.hex) // 2 - 1


def test_submit_requests_a_status_report():
    [submit] = encode_submit(TO, "Salut", status_report=True)
    assert submit.hex.startswith("0021000B91" + TO_ADDRESS[4:])


def test_submit_national_number_and_odd_digit_count():
    [submit] = encode_submit("38089336", "a")
    assert submit.hex.startswith("00010008818380396300")
    [submit] = encode_submit("123", "a")
    assert submit.hex.startswith("0001000381" + "21F3")


def test_submit_ucs2():
    [submit] = encode_submit(TO, "رمز")
    assert submit.hex == "000100" + TO_ADDRESS + "0008" + "06" + "063106450632"
    assert submit.tpdu_length == 19


def test_submit_gsm7_extension_characters_count_twice():
    [submit] = encode_submit(TO, "€")
    assert submit.hex.endswith("0000" + "02" + pack_septets([0x1B, 0x65]).hex().upper())


def test_long_gsm7_submit_has_concatenation_header_and_fill_bit():
    parts = encode_submit(TO, "x" * 153 + "AB" + "x" * 6, concat_reference=0xCC)
    assert len(parts) == 2
    first, second = parts
    assert first.hex.startswith("0041000B91" + TO_ADDRESS[4:] + "0000" + "A0" + "050003CC0201")
    assert first.tpdu_length == 13 + 140  # octets before the user data + full user data
    # 7 header septets (6 octets + 1 fill bit) + 8 text septets; "A" shifted by the fill bit
    assert second.hex[26:].startswith("0F" + "050003CC0202" + "8242")


def test_long_ucs2_submit_parts():
    parts = encode_submit(TO, "ب" * 100, status_report=True, concat_reference=7)
    assert len(parts) == 2
    assert parts[0].hex.startswith(
        "0061000B91" + TO_ADDRESS[4:] + "0008" + "8C" + "0500030702" + "01" + "0628" * 67
    )
    assert parts[1].hex.endswith("0008" + f"{6 + 66:02X}" + "0500030702" + "02" + "0628" * 33)


def test_three_part_submit_numbers_its_parts():
    parts = encode_submit(TO, "y" * 400, concat_reference=255)
    headers = [part.hex[28:40] for part in parts]
    assert headers == ["050003FF0301", "050003FF0302", "050003FF0303"]
    assert all(part.tpdu_length <= 140 + 13 for part in parts)


@pytest.mark.parametrize("number", ["+222 38089336", "Chinqit", "", "+", "+2223808933612345678901"])
def test_submit_refuses_what_is_not_a_number(number):
    with pytest.raises(PduError):
        encode_submit(number, "hi")


def test_submit_refuses_a_reference_wider_than_an_octet():
    with pytest.raises(PduError):
        encode_submit(TO, "z" * 200, concat_reference=256)


# ------------------------------------------------------------------------- SMS-DELIVER


def test_deliver_known_vector():
    # The widely published SMS-DELIVER example: "hellohello" from 27838890001 (national
    # subscriber number), time stamp 99-03-29 15:16:59 +02:00.
    message = decode("07917283010010F5040BC87238880900F10000993092516195800A" + HELLOHELLO_PACKED)
    assert message == Deliver(
        sender="27838890001",
        timestamp=datetime(1999, 3, 29, 15, 16, 59, tzinfo=timezone(timedelta(hours=2))),
        text="hellohello",
        encoding=GSM7,
        concat=None,
    )


def test_deliver_international_sender_and_utc_time_stamp():
    message = decode(_deliver("04", "00", 10, HELLOHELLO_PACKED))
    assert message.sender == TO
    assert message.timestamp == datetime(2025, 1, 20, 12, 34, 56, tzinfo=UTC)


def test_deliver_negative_time_zone():
    message = decode(_deliver("04", "00", 10, HELLOHELLO_PACKED, timestamp="5210022143650A"))
    assert message.timestamp.utcoffset() == timedelta(hours=-5)


def test_deliver_alphanumeric_sender():
    septets = gsm7_encode("Chinqit")
    sender = "0DD0" + pack_septets(septets).hex().upper()  # 13 useful semi-octets
    assert decode(_deliver("04", "00", 10, HELLOHELLO_PACKED, sender=sender)).sender == "Chinqit"


def test_deliver_ucs2():
    message = decode(_deliver("04", "08", 6, "063106450632"))
    assert (message.text, message.encoding) == ("رمز", UCS2)


def test_deliver_gsm7_with_8bit_concatenation_and_fill_bit():
    message = decode(_deliver("44", "00", 9, "050003CC0201" + "8242"))
    assert message.text == "AB"
    assert message.concat == Concat(reference=0xCC, total=2, sequence=1)


def test_deliver_gsm7_with_16bit_concatenation_needs_no_fill_bits():
    message = decode(_deliver("44", "00", 8 + 2, "0608041234030241" + "21"))
    assert message.text == "AB"  # 0x41 | 0x42 << 7 packed without fill
    assert message.concat == Concat(reference=0x1234, total=3, sequence=2)


def test_deliver_ucs2_with_concatenation():
    message = decode(_deliver("44", "08", 10, "0500030A0302" + "06280628"))
    assert message.text == "بب"
    assert message.concat == Concat(10, 3, 2)


def test_deliver_ignores_impossible_concatenation():
    assert decode(_deliver("44", "08", 8, "0500030A0204" + "0628")).concat is None


def test_deliver_skips_other_header_elements():
    # port addressing element (0x05) before the concatenation element
    message = decode(_deliver("44", "08", 14, "0B050400000000" + "0003010201" + "0628"))
    assert message.concat == Concat(1, 2, 1)
    assert message.text == "ب"


def test_deliver_8bit_and_message_class_codings():
    assert decode(_deliver("04", "04", 2, "41FF")).encoding == EIGHT_BIT
    assert decode(_deliver("04", "04", 2, "41FF")).text == "Aÿ"
    assert decode(_deliver("04", "F0", 10, HELLOHELLO_PACKED)).text == "hellohello"  # flash
    assert decode(_deliver("04", "18", 6, "063106450632")).text == "رمز"  # UCS-2 class 0


def test_deliver_without_smsc_when_the_length_says_so():
    tpdu = _deliver("04", "00", 10, HELLOHELLO_PACKED)[len(SMSC) :]
    assert decode(tpdu, len(tpdu) // 2).text == "hellohello"
    assert decode(SMSC + tpdu, len(tpdu) // 2).text == "hellohello"


def test_join_parts_mends_a_split_surrogate_pair():
    first = decode(_deliver("44", "08", 8, "0500030A0201" + "D83D"))
    second = decode(_deliver("44", "08", 8, "0500030A0202" + "DE00"))
    assert join_parts([first.text, second.text]) == "😀"


@pytest.mark.parametrize(
    "pdu",
    [
        "zz",
        SMSC + "040B91",  # ends in the address
        "0001000B916407281553F800000A" + HELLOHELLO_PACKED,  # an SMS-SUBMIT
        _deliver("04", "00", 10, HELLOHELLO_PACKED, timestamp="52310221436500"),  # 13th month
        _deliver("04", "00", 12, HELLOHELLO_PACKED),  # more septets than the data holds
    ],
)
def test_decode_refuses_broken_pdus(pdu):
    with pytest.raises(PduError):
        decode(pdu)


# ------------------------------------------------------------------------- status reports


def _status_report(status: str, reference: str = "2A") -> str:
    return "06" + reference + TO_ADDRESS + SCTS + SCTS + status


def test_status_report_delivered():
    report = decode(SMSC + _status_report("00"))
    assert isinstance(report, StatusReport)
    assert (report.reference, report.recipient, report.status) == (42, TO, 0)
    assert report.delivered and report.final
    assert report.discharge_time == datetime(2025, 1, 20, 12, 34, 56, tzinfo=UTC)
    assert report.describe() == "status 0x00: received by the recipient"


def test_status_report_without_smsc():
    tpdu = _status_report("00", reference="FF")
    assert decode(tpdu, len(tpdu) // 2).reference == 255


@pytest.mark.parametrize(
    "status, delivered, final",
    [
        ("01", True, True),
        ("21", False, False),
        ("46", False, True),
        ("62", False, True),
    ],
)
def test_status_report_outcomes(status, delivered, final):
    report = decode(SMSC + _status_report(status))
    assert (report.delivered, report.final) == (delivered, final)


# TS 23.038 §6.1.2.3.1: 7 spare bits at the end hold <CR>, not a septet of zeros ('@')


def _septets_from_octets(user_data: bytes, fill_bits: int = 0) -> str:
    """What a receiver that counts septets from the octets (ignoring TP-UDL) reads."""
    return gsm7_decode(unpack_septets(user_data, (8 * len(user_data) - fill_bits) // 7, fill_bits))


@pytest.mark.parametrize("text", ["1234567", "€" * 75 + "a", "abcdefghijklmno"])
def test_seven_spare_bits_hold_cr_not_at(text):
    packed = pack_septets(gsm7_encode(text))
    assert packed[-1] >> 1 == 0x0D
    assert _septets_from_octets(packed) == text + "\r"
    assert not _septets_from_octets(packed).endswith("@")
    assert gsm7_decode(unpack_septets(packed, len(gsm7_encode(text)))) == text


def test_no_cr_when_fewer_spare_bits():
    assert pack_septets(gsm7_encode("hellohello")).hex().upper() == HELLOHELLO_PACKED
    assert _septets_from_octets(pack_septets(gsm7_encode("12345678"))) == "12345678"


def test_cr_padding_after_a_header_keeps_udl_and_text():
    # 6-octet concat UDH: 1 fill bit; 48 + 1 + 7n bits end with 7 spare when n % 8 == 0
    for n in (8, 16, 152):
        text = "a" * n
        udl, user_data = pdu._encode_user_data(GSM7, text, bytes([5, 0, 3, 1, 2, 1]))
        assert udl == 7 + n
        header, decoded = pdu._decode_user_data(user_data, udl, GSM7, True)
        assert decoded == text
        assert user_data[-1] >> 1 == 0x0D
