"""The short chaos run inside `make test` (the full one is `make chaos`): 30 SMS while the
bridge is killed three times and AWS freezes once past an AWS call's bound."""

import pytest

from tests.chaos.__main__ import run

pytestmark = pytest.mark.e2e


def test_no_sms_lost_stuck_or_sent_twice_while_parts_fail(capsys):
    code = run(count=30, kills=3, freezes=1)
    table = capsys.readouterr().out
    print(table)
    assert code == 0, table
