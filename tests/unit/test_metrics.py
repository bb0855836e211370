"""Lifecycle events become CloudWatch EMF lines on a Lambda's stdout, and nothing elsewhere."""

import json

from chalicelib import metrics
from chalicelib.clock import now
from chalicelib.messages.events import Change, MessageEvent
from chalicelib.models import Message


def event():
    return MessageEvent(Change.STATUS, Message("m-1", status="sent", channel="whatsapp"), now())


def test_one_metric_line_per_event_in_lambda(monkeypatch, capsys):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "chinqit-sms-gateway-dev")
    metrics.on_message_event(event())
    [line] = capsys.readouterr().out.splitlines()
    emitted = json.loads(line)
    assert emitted["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Chinqit/SMS"
    assert (emitted["Change"], emitted["Status"], emitted["Channel"], emitted["Messages"]) == (
        "status",
        "sent",
        "whatsapp",
        1,
    )


def test_nothing_outside_lambda(monkeypatch, capsys):
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    metrics.on_message_event(event())
    assert capsys.readouterr().out == ""
