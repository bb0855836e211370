"""Phone number rules, with every example of seed 000."""

import pytest

from chalicelib.errors import ValidationError
from chalicelib.phone import normalize


@pytest.mark.parametrize("raw", ["+22238089336", "22238089336", "38089336"])
def test_seed_examples_normalise_to_canonical(raw):
    assert normalize(raw) == "+22238089336"


@pytest.mark.parametrize("raw", ["22000000", "49999999", "+22245251234"])
def test_local_numbers_starting_with_2_3_or_4_are_accepted(raw):
    assert normalize(raw).startswith("+222")


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("12345678", "must start with 2, 3 or 4"),
        ("+222 27 63 56 42", "spaces are not allowed"),
        ("+1234567890", "not a valid Mauritanian number"),
        ("+222-27-63-56-42", "dashes are not allowed"),
        ("3808933", "wrong length"),
        ("380893361", "wrong length"),
        ("+38089336", "country code must be +222"),
        ("+222380893361", "wrong length"),
        ("22212345678", "must start with 2, 3 or 4"),
        ("3808933a", "only digits"),
        ("", "is required"),
        (None, "is required"),
        (38089336, "must be a string"),
        ("٣٨٠٨٩٣٣٦", "only digits"),
    ],
)
def test_invalid_numbers_name_the_problem(raw, reason):
    with pytest.raises(ValidationError) as caught:
        normalize(raw)
    assert caught.value.status == 400
    assert caught.value.errors[0]["field"] == "phoneNumber"
    assert reason in caught.value.errors[0]["message"]


@pytest.mark.parametrize(
    "number, operator",
    [
        ("+22222000001", "chinguitel"),
        ("+22238089336", "mattel"),
        ("+22244000002", "mauritel"),
        ("+22225251234", None),  # fixed lines
        ("+22235251234", None),
        ("+22245251234", None),
        ("38089336", "mattel"),  # as a bridge's lines option may give it
        ("+33638089336", None),  # another country
    ],
)
def test_the_operator_comes_from_the_first_digit(number, operator):
    from chalicelib.phone import operator_of

    assert operator_of(number) == operator
