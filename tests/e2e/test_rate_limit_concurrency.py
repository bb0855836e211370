"""The OTP rate limit (3 per minute per phone per API key) holds under a concurrent burst.

One burst of requests released together by a barrier, on loopback, against the local
stack: however they interleave, exactly three get through.
"""

import threading
import time

import pytest
import requests

from devstack.harness import fresh_local_number

pytestmark = pytest.mark.e2e

BURST = 12
PER_MINUTE = 3


def away_from_a_minute_boundary(margin: float = 5.0) -> None:
    """The limit counts fixed clock minutes: a burst straddling two would rightly get 6."""
    into_minute = time.time() % 60
    if into_minute > 60 - margin:
        time.sleep(60 - into_minute + 0.2)


def burst(stack, body: dict, size: int = BURST, key=None) -> list[requests.Response]:
    barrier = threading.Barrier(size)
    results: list = [None] * size
    headers = {"X-API-Key": key or stack.key}

    def fire(i):
        with requests.Session() as session:
            session.headers.update(headers)
            try:
                barrier.wait(timeout=30)
                results[i] = session.post(stack.url + "/otp/send", json=body, timeout=60)
            except Exception as exc:  # noqa: BLE001  reported below, with the others
                results[i] = exc

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert not any(t.is_alive() for t in threads), "a request of the burst never returned"
    errors = [r for r in results if not isinstance(r, requests.Response)]
    assert not errors, f"requests of the burst failed on the wire: {errors}"
    return results


def test_concurrent_otp_sends_for_one_phone_let_exactly_three_through(stack, other_key):
    phone = fresh_local_number()
    away_from_a_minute_boundary()
    answers = burst(stack, {"phoneNumber": phone})

    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] * PER_MINUTE + [429] * (BURST - PER_MINUTE), statuses
    accepted = [r.json() for r in answers if r.status_code == 200]
    assert len({a["messageId"] for a in accepted}) == PER_MINUTE
    for refused in (r for r in answers if r.status_code == 429):
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        body = refused.json()
        assert body["success"] is False and "per minute" in body["message"]
        assert isinstance(body["errors"], list)

    # The limit is per phone number and per API key: neither neighbour is held back.
    assert stack.post("/otp/send", {"phoneNumber": fresh_local_number()}).status_code == 200
    assert stack.post("/otp/send", {"phoneNumber": phone}, key=other_key).status_code == 200
    assert stack.post("/otp/send", {"phoneNumber": phone}).status_code == 429
