"""The short chaos run inside `make test` (the full one is `make chaos`): 30 SMS while the
bridge is killed three times, AWS freezes once past an AWS call's bound, an API process
is killed twice between a write and its queue, DynamoDB and SQS fail a share of their
calls, and the webhook receiver is down, then slow."""

import pytest

from tests.chaos.__main__ import Plan, run

pytestmark = pytest.mark.e2e


def test_no_sms_lost_stuck_or_sent_twice_while_parts_fail(capsys):
    code = run(30, Plan(kills=3, freezes=1, api_kills=2, error_bursts=1, webhook_faults=1))
    table = capsys.readouterr().out
    print(table)
    assert code == 0, table
