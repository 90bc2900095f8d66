"""Debian's headless Chromium driven by Playwright, for the dashboard's tests and bench.

Never a browser Playwright downloads: `executable_path` is the distribution's chromium
(`make setup` installs it with tools/apt_install.sh). `--no-sandbox` because the tests
run as root, where Chromium's sandbox refuses to start.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from playwright.sync_api import Browser, ConsoleMessage, Error, Page, ViewportSize, sync_playwright

CHROMIUM = "/usr/bin/chromium"
LAPTOP: ViewportSize = {"width": 1366, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}


@contextmanager
def chromium() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        raise RuntimeError(f"{CHROMIUM} is missing: `make setup` installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class ConsoleErrors:
    """Every console error and uncaught exception a page produced."""

    messages: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> Page:
        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.messages.append(f"console: {message.text} at {message.location}")

        def on_page_error(error: Error) -> None:
            self.messages.append(f"uncaught: {error.message}")

        page.on("console", on_console)
        page.on("pageerror", on_page_error)
        return page
