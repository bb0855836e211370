"""A real headless Chromium (Debian's chromium and chromium-driver) driven by Selenium.

`make test` installs both packages when they are missing. Chromium starts with a fresh
profile and without its background network traffic (this machine has no internet).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from devstack.harness import PROJECT

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
AXE = Path(__file__).parent / "axe" / "axe.min.js"
SCREENSHOTS = PROJECT / "var" / "console-screenshots"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
)


class Browser:
    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="chinqit-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        self.driver.set_page_load_timeout(30)
        self.console_lines: list[dict] = []

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    # --- finding and waiting
    def find(self, css: str, seconds: float = 15):
        return self.wait(lambda: self._visible(css), f"no visible {css!r}", seconds)

    def find_all(self, css: str):
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text_of(self, css: str) -> str:
        return self.find(css).text

    def wait_text(self, css: str, wanted: str, seconds: float = 15):
        """The first visible element matching ``css`` whose text contains ``wanted``."""
        return self.wait(
            lambda: next((e for e in self.find_all(css) if wanted in e.text), None),
            f"no {css!r} containing {wanted!r}",
            seconds,
        )

    def wait(self, probe, what: str, seconds: float = 15):
        deadline = time.monotonic() + seconds
        while True:
            try:
                found = probe()
            except StaleElementReferenceException:
                found = None
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{what} after {seconds}s on {self.driver.current_url}; the page says:\n"
                    + self.driver.find_element(By.TAG_NAME, "main").text[-1500:]
                )
            time.sleep(0.1)

    def _visible(self, css: str):
        return next((e for e in self.find_all(css) if e.is_displayed()), None)

    # --- what the page did
    def logs(self) -> list[dict]:
        """Console lines and errors so far (CSP violations show up here)."""
        self.console_lines += self.driver.get_log("browser")
        return self.console_lines

    def run_axe(self) -> list[dict]:
        """axe-core's serious and critical violations on the current page."""
        if not self.driver.execute_script("return !!window.axe"):
            self.driver.execute_script(AXE.read_text(encoding="utf-8"))
        result = self.driver.execute_async_script(
            "var done = arguments[arguments.length - 1];"
            "axe.run(document, {resultTypes: ['violations']})"
            ".then(function (r) { done(JSON.stringify(r.violations)); },"
            "      function (e) { done(JSON.stringify([{id: 'axe-error', impact: 'critical',"
            "        description: String(e)}])); });"
        )
        return [
            {
                "id": v["id"],
                "impact": v["impact"],
                "description": v["description"],
                "nodes": [n.get("target") for n in v.get("nodes", [])][:5],
            }
            for v in json.loads(result)
            if v["impact"] in ("serious", "critical")
        ]

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(1280, max(900, min(int(height), 4000)))
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(1280, 900)
        return path
