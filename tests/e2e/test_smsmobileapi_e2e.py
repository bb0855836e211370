"""SMSMobileAPI integrations against the local stack: their own PyPI client (smsmobileapi
2.0.1), changed only in its base URL, and a form POST as their PHP examples make it."""

import time

import pytest
import requests
from smsmobileapi import SMSSender

from devstack.harness import OUTBOUND_QUEUE, fresh_local_number

from .helpers import wait_for_sms

pytestmark = pytest.mark.e2e


@pytest.fixture
def sender(stack) -> SMSSender:
    """Their client, pointed at the stack: it hard-codes https://api.smsmobileapi.com."""
    client = SMSSender(stack.key)
    client.api_url_send = stack.url + "/sendsms"
    client.api_url_received = stack.url + "/getsms"
    return client


def wait_until_sent(stack, message_id: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while stack.get(f"/messages/{message_id}").json()["status"] not in ("sent", "delivered"):
        assert time.monotonic() < deadline, f"{message_id} not sent after {seconds}s"
        time.sleep(0.2)


def test_their_client_sends_and_reads_the_reply(stack, sender):
    number = fresh_local_number()
    answer = sender.send_message("+222" + number, "Votre rendez-vous est demain")
    assert answer["result"]["error"] == 0 and answer["result"]["sent"] == "1"
    sms = wait_for_sms(stack, OUTBOUND_QUEUE, answer["result"]["id"])
    assert sms["to"] == "+222" + number and sms["text"] == "Votre rendez-vous est demain"
    wait_until_sent(stack, answer["result"]["id"])  # it left the phone: replies are ours

    stack.receive_sms("+222" + number, "OK merci")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        received = sender.get_received_messages()["result"]["sms"]
        replies = [s for s in received if s["number"] == "+222" + number]
        if replies:
            break
        time.sleep(0.3)
    assert replies and replies[0]["message"] == "OK merci" and replies[0]["guid"]


def test_their_client_asking_for_whatsapp_only_sends_nothing(stack, sender):
    before = len(stack.outbox_lines())
    answer = sender.send_message("+222" + fresh_local_number(), "x", sendwa=1, sendsms=0)
    assert answer.get("error"), "their client turns the 400 into {'error': ...}"
    time.sleep(1)
    assert len(stack.outbox_lines()) == before


def test_a_form_post_like_their_php_example(stack):
    answer = requests.post(
        stack.url + "/sendsms/",
        data={"apikey": stack.key, "recipients": "+222" + fresh_local_number(), "message": "é€"},
        headers={"Accept": "application/json"},
        timeout=10,
    )
    assert answer.status_code == 200 and answer.json()["result"]["error"] == 0
    for path in ("/getsms/", "/log/sent/sms/", "/gateway/mobile/list/"):
        listed = requests.get(stack.url + path, params={"apikey": stack.key}, timeout=10)
        assert listed.status_code == 200 and listed.json()["result"]["error"] == "", path
