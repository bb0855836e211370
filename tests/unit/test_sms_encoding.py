import pytest

from chalicelib.wire.sms_encoding import (
    GSM7,
    UCS2,
    Analysis,
    analyze,
    gsm7_decode,
    gsm7_encode,
    is_gsm7,
    split,
)

ARABIC_OTP = "رمز التحقق الخاص بك هو 123456"


@pytest.mark.parametrize(
    "char, septets",
    [
        ("@", [0x00]),
        ("£", [0x01]),
        ("\n", [0x0A]),
        ("Δ", [0x10]),
        ("É", [0x1F]),
        (" ", [0x20]),
        ("0", [0x30]),
        ("¡", [0x40]),
        ("A", [0x41]),
        ("§", [0x5F]),
        ("¿", [0x60]),
        ("a", [0x61]),
        ("à", [0x7F]),
        ("€", [0x1B, 0x65]),
        ("{", [0x1B, 0x28]),
        ("\\", [0x1B, 0x2F]),
        ("|", [0x1B, 0x40]),
    ],
)
def test_gsm7_encode_uses_the_03_38_table(char, septets):
    assert gsm7_encode(char) == septets
    assert gsm7_decode(septets) == char


def test_every_default_alphabet_septet_round_trips():
    septets = [septet for septet in range(128) if septet != 0x1B]
    assert gsm7_encode(gsm7_decode(septets)) == septets


def test_gsm7_encode_refuses_characters_outside_the_alphabet():
    for text in ("ç", "رمز", "😀", "ê"):
        with pytest.raises(ValueError):
            gsm7_encode(text)


def test_gsm7_decode_of_odd_escapes():
    assert gsm7_decode([0x1B, 0x41]) == "A"  # unknown extension: the default character
    assert gsm7_decode([0x1B, 0x1B]) == " "  # reserved further extension shows a space
    assert gsm7_decode([0x41, 0x1B]) == "A"  # dangling escape
    with pytest.raises(ValueError):
        gsm7_decode([0x80])


def test_is_gsm7():
    assert is_gsm7("Votre code est 123456. Bienvenue à Nouakchott! {€}")
    assert is_gsm7("")
    assert not is_gsm7("Reçu")
    assert not is_gsm7(ARABIC_OTP)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", Analysis(GSM7, 1, 0)),
        ("a" * 160, Analysis(GSM7, 1, 160)),
        ("a" * 161, Analysis(GSM7, 2, 161)),
        ("a" * 306, Analysis(GSM7, 2, 306)),
        ("a" * 307, Analysis(GSM7, 3, 307)),
        ("€" * 80, Analysis(GSM7, 1, 160)),
        ("€" * 81, Analysis(GSM7, 2, 162)),
        (ARABIC_OTP, Analysis(UCS2, 1, 29)),
        ("ب" * 70, Analysis(UCS2, 1, 70)),
        ("ب" * 71, Analysis(UCS2, 2, 71)),
        ("ب" * 134, Analysis(UCS2, 2, 134)),
        ("ب" * 135, Analysis(UCS2, 3, 135)),
        ("😀" * 35, Analysis(UCS2, 1, 70)),
        ("😀" * 36, Analysis(UCS2, 2, 72)),
    ],
)
def test_analyze(text, expected):
    assert analyze(text) == expected


def test_split_keeps_a_short_text_whole():
    assert split("Bonjour") == (GSM7, ["Bonjour"])
    assert split("") == (GSM7, [""])


def test_split_never_breaks_an_escape_pair():
    encoding, parts = split("a" * 152 + "€" + "b" * 10)
    assert encoding == GSM7
    assert parts == ["a" * 152, "€" + "b" * 10]


def test_split_never_breaks_a_surrogate_pair():
    encoding, parts = split("a" * 66 + "😀" + "ب" * 10)
    assert encoding == UCS2
    assert parts == ["a" * 66, "😀" + "ب" * 10]


@pytest.mark.parametrize(
    "text",
    [
        "x" * 1000,
        "{[]}" * 100,
        "€a" * 77,
        ARABIC_OTP * 10,
        "😀a" * 50,
        "é" * 400,
    ],
)
def test_split_parts_fit_and_agree_with_analyze(text):
    encoding, parts = split(text)
    analysis = analyze(text)
    assert "".join(parts) == text
    assert (encoding, len(parts)) == (analysis.encoding, analysis.segments)
    limit = 153 if encoding == GSM7 else 67
    for part in parts:
        units = len(gsm7_encode(part)) if encoding == GSM7 else len(part.encode("utf-16-be")) // 2
        assert units <= limit
