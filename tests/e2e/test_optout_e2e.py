"""Opt-out over the wire: a STOP typed on the customer's phone reaches the simulated phone,
and the account's next SMS to that number is refused; START lets them through again."""

import time

import pytest

from devstack.harness import fresh_local_number

pytestmark = pytest.mark.e2e

LEFT = ("sent", "delivered")


def wait_until(predicate, seconds: float = 20, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"not within {seconds}s: {what}"
        time.sleep(0.2)


def send(stack, number: str):
    return stack.post("/messages/send", {"message": "Soldes -20 %", "phoneNumber": number})


def test_stop_and_start_typed_on_the_phone(stack):
    number = "+222" + fresh_local_number()
    first = send(stack, number).json()["messageId"]
    wait_until(lambda: stack.get(f"/messages/{first}").json()["status"] in LEFT, what="sent")

    stack.receive_sms(number, "Arrêt")
    wait_until(
        lambda: number in stack.get("/contacts/opted-out").json()["phoneNumbers"],
        what="the STOP reached the list",
    )
    refused = send(stack, number)
    assert refused.status_code == 400 and "opted out" in refused.json()["message"]

    stack.receive_sms(number, "START")
    wait_until(
        lambda: number not in stack.get("/contacts/opted-out").json()["phoneNumbers"],
        what="the START reached the list",
    )
    assert send(stack, number).status_code == 200
