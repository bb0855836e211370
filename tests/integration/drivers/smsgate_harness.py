"""The phone harness of the shared driver tests, for the SMSGate driver on the fake app."""

from __future__ import annotations

import socket

from device_bridge.drivers import smsgate

from .smsgate_fake import PASSWORD, SIGNING_KEY, USERNAME, FakeSmsGateApp


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmsGateHarness:
    """An SmsGateDriver opened on a FakeSmsGateApp, its webhooks on a free local port."""

    def __init__(self, sims: int = 2, **driver_options):
        self.app = FakeSmsGateApp(sims=sims)
        self.driver = self.open_driver(**driver_options)

    def open_driver(self, **options) -> smsgate.SmsGateDriver:
        port = free_port()
        options = {
            "url": self.app.url,
            "username": USERNAME,
            "password": PASSWORD,
            "signing_key": SIGNING_KEY,
            "listen_port": port,
            "webhook_url": f"http://127.0.0.1:{port}/smsgate",
            "send_timeout": 5.0,
            "request_timeout": 2.0,
            **options,
        }
        driver = smsgate.create(**options)
        try:
            driver.open()
        except Exception:
            self.app.close()
            raise
        return driver

    def network_sent(self) -> list[tuple[str, str]]:
        return [(sms["to"], sms["text"]) for sms in self.app.network]

    def receive(self, sender: str, text: str) -> None:
        self.app.receive(sender, text)

    def refuse_next_send(self, code: str) -> None:
        self.app.refuse_next_send(code)

    def close(self) -> None:
        self.driver.close()
        self.app.wait_for_posts()
        self.app.close()
