"""Drivers are chosen by name and get their options converted from text."""

import pytest

from device_bridge import drivers


def test_text_options_take_the_declared_types(tmp_path):
    driver = drivers.load(
        "simulator",
        outbox=str(tmp_path / "out"),
        inbox=str(tmp_path / "in"),
        send_delay="0.5",
        delivery_reports="false",
    )
    assert driver.options.send_delay == 0.5 and driver.options.delivery_reports is False


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("pager", {}, "unknown driver 'pager'"),
        ("simulator", {"colour": "red"}, "unknown option(s) colour"),
        ("simulator", {"delivery_reports": "perhaps"}, "must be true or false"),
        ("simulator", {"send_delay": "soon"}, "must be a number"),
    ],
)
def test_mistakes_are_named(name, options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        drivers.load(name, **options)
