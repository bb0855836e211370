"""Inside Lambda the gateway writes one JSON object per log line, one line per request."""

import json
import logging

import pytest

from chalicelib import logs


@pytest.fixture
def lambda_logs(monkeypatch):
    """The root handler as the Lambda runtime has one, formatted by logs.configure()."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "chinqit-prod-APIHandler")
    written: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            written.append(self.format(record))

    handler = Keep()
    root = logging.getLogger()
    root.addHandler(handler)
    logs.configure()
    yield written
    root.removeHandler(handler)


def test_one_json_line_per_request_with_its_fields(api, lambda_logs):
    sent = api.post("/messages/send", {"message": "Bonjour", "phoneNumber": "38089336"})
    [line] = [json.loads(w) for w in lambda_logs if '"route"' in w]
    assert line["route"] == "/messages/send" and line["method"] == "POST"
    assert line["status"] == 200 and line["messageId"] == sent.json["messageId"]
    assert line["accountId"] == "acme" and line["level"] == "INFO"
    assert isinstance(line["latencyMs"], float)
    assert api.key not in json.dumps(lambda_logs)
    assert line["keyPrefix"] and api.key.startswith(line["keyPrefix"])


def test_a_refused_request_is_logged_without_the_key_it_carried(api, lambda_logs):
    wrong = "sk_live_not-a-real-key-0123456789"
    body = {"message": "x", "phoneNumber": "38089336"}
    assert api.post("/messages/send", body, key=wrong).status_code == 403
    [line] = [json.loads(w) for w in lambda_logs if '"route"' in w]
    assert line["status"] == 403 and "accountId" not in line
    assert "not-a-real-key" not in json.dumps(lambda_logs)
