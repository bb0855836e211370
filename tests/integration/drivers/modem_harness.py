"""The phone harness of the shared driver tests, for the modem driver on a fake modem."""

from __future__ import annotations

from device_bridge.drivers import modem

from .fake_modem import FakeModem


class ModemHarness:
    """A ModemDriver opened on a FakeModem (profile "sim800" or "quectel")."""

    def __init__(self, profile: str = "sim800", sim_pin: str | None = None, **driver_options):
        self.modem = FakeModem(profile, pin=sim_pin)
        if sim_pin:
            driver_options.setdefault("pin", sim_pin)
        options = {"command_timeout": 2.0, "send_timeout": 5.0, **driver_options}
        self.driver = modem.create(port=self.modem.port, **options)
        try:
            self.driver.open()
        except Exception:
            self.modem.close()
            raise

    def network_sent(self) -> list[tuple[str, str]]:
        return self.modem.network_sent()

    def receive(self, sender: str, text: str) -> None:
        self.modem.receive(sender, text)

    def refuse_next_send(self, code: str) -> None:
        self.modem.refuse_next_send(code)

    def close(self) -> None:
        self.driver.close()
        self.modem.close()
