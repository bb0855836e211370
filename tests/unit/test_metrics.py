"""Lifecycle events become CloudWatch EMF lines on a Lambda's stdout, and nothing elsewhere."""

import json
from datetime import timedelta

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


def lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_a_sent_message_counts_by_operator_kind_and_device_and_its_wait(monkeypatch, capsys):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "chinqit-prod-APIHandler")
    created = now()
    message = Message(
        "m-2",
        status="sent",
        kind="otp",
        phone_number="+22238089336",
        device_id="phone-1",
        created_at=created,
        sent_at=created + timedelta(seconds=4),
    )
    metrics.on_message_event(MessageEvent(Change.STATUS, message, now()))
    counted, waited = lines(capsys)
    [declared] = counted["_aws"]["CloudWatchMetrics"]
    assert ["Status", "Operator"] in declared["Dimensions"]
    assert (counted["Operator"], counted["Kind"], counted["Device"]) == ("mattel", "otp", "phone-1")
    assert waited["QueuedToSentSeconds"] == 4.0
    assert waited["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [
        {"Name": "QueuedToSentSeconds", "Unit": "Seconds"}
    ]
    for line in (counted, waited):  # every dimension a set names is on the line
        for dimensions in line["_aws"]["CloudWatchMetrics"][0]["Dimensions"]:
            assert all(name in line for name in dimensions)


def test_otp_verifications_count_by_outcome(api, monkeypatch, capsys):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "chinqit-prod-APIHandler")
    api.post("/otp/send", {"phoneNumber": "38089336"})
    api.post("/otp/verify", {"phoneNumber": "38089336", "otp": "000000"})
    api.post("/otp/verify", {"phoneNumber": "48089336", "otp": "000000"})
    outcomes = [line["Outcome"] for line in lines(capsys) if "OtpVerifications" in line]
    assert outcomes in (["wrong", "none"], ["verified", "none"])  # 1 in a million: 000000
