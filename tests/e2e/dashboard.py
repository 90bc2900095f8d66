"""What every dashboard test drives: a fresh browser page on the gateway that fails its
test on any console error, screenshots under build/e2e-screenshots/ (not committed),
signing in, and the order ticket's fields.

The fixtures are imported by the dashboard's test modules (`browser_fixture`,
`console_fixture`, `page_fixture`, registered as `browser`, `console` and `page`), so each
module shares one browser and checks every page it opens for console errors.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.e2e.browser import LAPTOP, ConsoleErrors, chromium
from tests.e2e.e2e_client import PASSWORD

SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "e2e-screenshots"
TIMEOUT_MS = 20_000


@pytest.fixture(name="browser", scope="module")
def browser_fixture() -> Iterator[Browser]:
    with chromium() as opened:
        yield opened


@pytest.fixture(name="console")
def console_fixture() -> ConsoleErrors:
    return ConsoleErrors()


@pytest.fixture(name="page")
def page_fixture(browser: Browser, gateway_url: str, console: ConsoleErrors) -> Iterator[Page]:
    context = browser.new_context(viewport=LAPTOP, base_url=gateway_url)
    context.set_default_timeout(TIMEOUT_MS)
    opened = console.watch(context.new_page())
    yield opened
    context.close()
    assert console.messages == [], "the page logged errors:\n" + "\n".join(console.messages)


def shot(page: Page, name: str, *, full_page: bool = True) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


def sign_in(page: Page, email: str, button: str = "Sign in") -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name=button, exact=True).click()
    # Login's bcrypt takes seconds on a loaded machine: more than expect's default 5 s.
    expect(page.get_by_role("button", name="Sign out")).to_be_visible(timeout=TIMEOUT_MS)


def watch_row(page: Page, symbol: str) -> Locator:
    return page.get_by_role("region", name="Watchlist").locator(f'tr[data-symbol="{symbol}"]')


def money(text: str) -> Decimal:
    return Decimal(re.sub(r"[^0-9.\-]", "", text))


def ticket_field(page: Page, label: str) -> Locator:
    return page.get_by_role("region", name="Order ticket").get_by_label(label, exact=True)


def submit(page: Page) -> None:
    page.get_by_role("button", name="Submit order").click()


def no_horizontal_scroll(page: Page) -> bool:
    return bool(
        page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
    )
