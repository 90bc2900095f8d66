"""The trading dashboard in a real browser against the whole mesh, as a trader uses it.

Headless Chromium (Debian's, see tests/e2e/browser.py) opens the page the gateway serves
at `/` and talks to the mesh the only way the page can: gRPC-Web through that gateway.
A trader registers, signs out and in, watches quotes tick, opens a chart, places a
resting limit order, replaces it and cancels it, sends an order the server refuses (its message
appears next to the field), buys at the market and sees the position and the cash
change; a signed-in page renews its token before it expires, and signing out revokes
it. No page may log a console error. Screenshots of every page, at laptop and phone
width, in both themes, go to build/e2e-screenshots/ (not committed).
"""

from __future__ import annotations

import gzip
import re
import uuid
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Page, expect

from cift.stack.gateway import web_served_files
from tests.e2e.browser import LAPTOP, PHONE
from tests.e2e.dashboard import (  # noqa: F401 (fixtures)
    browser_fixture,
    console_fixture,
    money,
    no_horizontal_scroll,
    page_fixture,
    shot,
    sign_in,
    submit,
    ticket_field,
    watch_row,
)
from tests.e2e.e2e_client import SYMBOL, Rest

pytestmark = pytest.mark.integration


def test_every_file_of_the_dashboard_is_served_gzipped_with_the_api_unchanged(
    gateway_url: str,
) -> None:
    dist = Path(__file__).resolve().parents[2] / "web" / "dist"
    for url, name in web_served_files().items():
        response = requests.get(gateway_url + url, headers={"accept-encoding": "gzip"}, timeout=10)
        assert response.status_code == 200, url
        assert response.content == (dist / name).read_bytes(), url
        if len(response.content) > 1024:
            assert response.headers.get("content-encoding") == "gzip", url
    # Not a file of the dashboard: the API's answers, as before.
    assert requests.get(gateway_url + "/v1/account", timeout=10).status_code == 401
    openapi = requests.get(gateway_url + "/openapi.json", headers={"accept-encoding": "gzip"})
    assert openapi.status_code == 200 and "content-encoding" not in openapi.headers
    assert openapi.json()["openapi"].startswith("3.")
    # The first load fits the budget: the dashboard's script and style, gzipped.
    first_load = sum(
        len(gzip.compress((dist / name).read_bytes()))
        for name in ("assets/app.js", "assets/app.css")
    )
    assert first_load < 300 * 1024


def test_a_trader_registers_trades_and_cancels_from_the_dashboard(page: Page) -> None:
    email = f"web-{uuid.uuid4().hex[:12]}@example.com"
    page.goto("/")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    shot(page, "sign-in")

    # Register (which signs in), sign out, and sign in again.
    sign_in(page, email, button="Register")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    sign_in(page, email)
    expect(page.get_by_test_id("signed-in-as")).to_have_text(email)

    # Quotes arrive and then move.
    last = watch_row(page, SYMBOL).get_by_test_id("last")
    expect(last).to_have_text(re.compile(r"^\d[\d,]*\.\d{2}$"))
    bid = watch_row(page, SYMBOL).get_by_test_id("bid")
    first_quote = (
        bid.inner_text() + "/" + watch_row(page, SYMBOL).get_by_test_id("ask").inner_text()
    )
    page.wait_for_function(
        """([symbol, first]) => {
            const row = document.querySelector(`tr[data-symbol="${symbol}"]`);
            const now = row.querySelector('[data-testid="bid"]').textContent + "/" +
                        row.querySelector('[data-testid="ask"]').textContent;
            return now !== first;
        }""",
        arg=[SYMBOL, first_quote],
    )
    # The change is a broker's: from the previous close, or the day's open on a new stack.
    change = watch_row(page, SYMBOL).get_by_test_id("change")
    expect(change).to_have_attribute(
        "title", re.compile(r"^Change since the (previous close|day's open)$")
    )
    expect(change).to_have_text(re.compile(r"^[+-]?\d+\.\d{2}%$"))
    cash_before = money(page.get_by_test_id("cash").inner_text())
    assert cash_before > 0
    shot(page, "dashboard")

    # The symbol's page: candles, live.
    watch_row(page, SYMBOL).get_by_role("link", name=SYMBOL).click()
    expect(page.get_by_role("heading", name=SYMBOL, exact=True)).to_be_visible()
    # The stack's simulator has minutes of history: too few 1Min bars for SMA 20 and
    # RSI 14 (checked by default), and the page says so rather than drawing nothing.
    expect(page.get_by_test_id("indicators-warming")).to_have_text(
        "Not enough 1Min bars yet for SMA 20, RSI 14: a shorter timeframe has more."
    )
    page.get_by_role("button", name="1Sec").click()
    candle_count = page.get_by_test_id("candle-count")
    # "N bars" once the history is drawn (a status while it loads).
    expect(candle_count).to_have_text(re.compile(r"^\d+ bars$"))
    loaded = int(candle_count.get_attribute("data-count") or 0)
    assert loaded >= 2
    # Live: a bar streamed after the history adds a candle.
    page.wait_for_function(
        "(loaded) => Number(document.querySelector('[data-testid=candle-count]')"
        ".dataset.count) > loaded",
        arg=loaded,
        timeout=60_000,
    )
    page.get_by_label("Bollinger").check()
    page.get_by_label("MACD").check()
    expect(page.get_by_test_id("price-chart").locator("canvas").first).to_be_visible()
    shot(page, "symbol")

    # A limit buy well under the market rests; it shows in open orders and can be canceled.
    market = Decimal(
        page.get_by_test_id("symbol-quote")
        .inner_text()
        .split("Bid ")[1]
        .split(" ")[0]
        .replace(",", "")
    )
    resting_price = (market * Decimal("0.95")).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
    ticket_field(page, "Order type").select_option(label="Limit")
    ticket_field(page, "Quantity").fill("1")
    ticket_field(page, "Limit price").fill(str(resting_price))
    ticket_field(page, "Time in force").select_option(label="GTC")
    submit(page)
    open_orders = page.get_by_role("region", name="Open orders")
    resting = open_orders.locator("tr[data-order-id]").filter(has_text=f"limit ${resting_price}")
    expect(resting).to_have_count(1)
    expect(resting.get_by_test_id("order-status")).to_have_text(re.compile("New|Accepted"))
    # Replace it at a cent lower: the new order takes its place in open orders.
    replaced_price = resting_price - Decimal("0.01")
    resting.get_by_role("button", name="Replace").click()
    open_orders.get_by_label("New limit price").fill(str(replaced_price))
    open_orders.get_by_role("button", name="Replace order").click()
    expect(resting).to_have_count(0)
    resting = open_orders.locator("tr[data-order-id]").filter(has_text=f"limit ${replaced_price}")
    expect(resting).to_have_count(1)
    resting.get_by_role("button", name="Cancel").click()
    expect(resting).to_have_count(0)

    # A price off the tick grid: the server's message, under the limit price.
    ticket_field(page, "Limit price").fill("10.001")
    submit(page)
    error = page.locator('[data-error-for="limit_price"]')
    expect(error).to_contain_text("tick grid")
    # Next to its field: the message follows the limit price input, under its label.
    assert error.evaluate(
        "(node) => node.previousElementSibling.id === 'ticket-limit_price' && "
        "node.parentElement.querySelector('label').textContent.trim() === 'Limit price'"
    )
    shot(page, "order-error")

    # A market buy fills: the position appears and cash goes down.
    ticket_field(page, "Order type").select_option(label="Market")
    ticket_field(page, "Time in force").select_option(label="Day")
    ticket_field(page, "Quantity").fill("2")
    submit(page)
    expect(page.get_by_test_id("order-result")).to_contain_text(SYMBOL)
    expect(error).to_have_count(0)
    page.get_by_role("link", name="Dashboard").click()
    position = page.get_by_role("region", name="Positions").locator(f'tr[data-position="{SYMBOL}"]')
    expect(position.get_by_test_id("position-qty")).to_have_text("2")
    expect(position.get_by_test_id("unrealized-pl")).to_have_text(re.compile(r"\$"))
    page.wait_for_function(
        "(before) => Number(document.querySelector('[data-testid=cash]').textContent.replace(/[^0-9.-]/g, '')) < before",
        arg=float(cash_before),
    )
    shot(page, "dashboard-with-position")

    # Order history: the canceled and the filled order.
    page.get_by_role("link", name="Orders").click()
    history = page.get_by_role("region", name="Order history")
    expect(history.get_by_test_id("order-status").filter(has_text="Canceled")).to_have_count(1)
    expect(history.get_by_test_id("order-status").filter(has_text="Replaced")).to_have_count(1)
    expect(history.get_by_test_id("order-status").filter(has_text="Filled")).to_have_count(1)
    shot(page, "orders")

    page.get_by_role("link", name="Portfolio").click()
    expect(
        page.get_by_role("region", name="Portfolio history").locator("canvas").first
    ).to_be_visible()
    shot(page, "portfolio")

    # With history enough to warm them up (SMA 20 needs 20 bars), the overlays and the
    # RSI and MACD panes are drawn.
    page.get_by_role("link", name="Dashboard").click()
    # A click anywhere on the watchlist's row opens the symbol, not only on its name.
    watch_row(page, SYMBOL).get_by_test_id("bid").click()
    expect(page.get_by_role("heading", name=SYMBOL, exact=True)).to_be_visible()
    page.get_by_role("button", name="1Sec").click()
    page.get_by_label("Bollinger").check()
    page.get_by_label("MACD").check()
    page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=price-chart]')"
        ".dataset.indicatorSeries) >= 8",
        timeout=120_000,
    )
    expect(page.get_by_test_id("indicators-warming")).to_have_count(0)
    shot(page, "symbol-indicators")

    # The other theme, and a phone's width.
    page.get_by_role("button", name="Switch theme").click()
    shot(page, "symbol-other-theme")
    page.set_viewport_size(PHONE)
    page.get_by_role("link", name="Dashboard").click()
    expect(position).to_be_visible()
    assert no_horizontal_scroll(page)
    shot(page, "dashboard-phone")


def test_the_api_docs_page_renders_the_openapi_document(page: Page) -> None:
    page.goto("/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("CIFT")
    expect(page.get_by_text("/v1/orders").first).to_be_visible()
    shot(page, "docs")


def stored_session(page: Page) -> dict[str, Any] | None:
    """The tokens the dashboard keeps (session.ts), or None when signed out."""
    session: dict[str, Any] | None = page.evaluate(
        "() => JSON.parse(sessionStorage.getItem('cift.session') || 'null')"
    )
    return session


def test_the_token_is_renewed_before_it_expires_and_sign_out_revokes_it(
    page: Page, rest: Rest
) -> None:
    # The page's clock is Playwright's, so the access token's lifetime (15 minutes) can
    # be skipped: timers due in between fire once, as after a laptop wakes up.
    page.clock.install()
    page.goto("/")
    email = f"web-renew-{uuid.uuid4().hex[:12]}@example.com"
    sign_in(page, email, button="Register")
    first = stored_session(page)
    assert first is not None
    left_ms = first["expiresAt"] - page.evaluate("() => Date.now()")
    assert left_ms > 60_000

    # Half a minute before expiry: past the moment the page renews (a minute early).
    page.clock.fast_forward(left_ms - 30_000)
    page.wait_for_function(
        """(old) => {
            const s = JSON.parse(sessionStorage.getItem('cift.session') || 'null');
            return s !== null && s.accessToken !== old;
        }""",
        arg=first["accessToken"],
    )
    renewed = stored_session(page)
    assert renewed is not None and renewed["refreshToken"] != first["refreshToken"]
    me = rest.ok("GET", "/v1/auth/me", token=renewed["accessToken"])
    assert me["user"]["email"] == email
    expect(page.get_by_test_id("signed-in-as")).to_have_text(email)

    # Signing out revokes the renewed refresh token and forgets both tokens.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert stored_session(page) is None
    spent = rest.call("POST", "/v1/auth/refresh", json={"refreshToken": renewed["refreshToken"]})
    assert spent.status_code == 401


# Every page of the signed-in dashboard: (link in the navigation, something it shows).
PAGES = [
    ("Dashboard", "Watchlist"),
    ("Orders", "Order history"),
    ("Portfolio", "Portfolio history"),
    ("Backtests", "New backtest"),
]
MONEY = re.compile(r"^[+-]?\$[\d,]+\.\d{2}$")


def test_every_page_fits_a_phone_in_both_themes(page: Page) -> None:
    page.goto("/")
    sign_in(page, f"web-pages-{uuid.uuid4().hex[:12]}@example.com", button="Register")
    for test_id in ("cash", "equity", "buying-power", "day-pl"):
        expect(page.get_by_test_id(test_id)).to_have_text(MONEY)
    for theme in ("first", "second"):
        for width, viewport in (("laptop", LAPTOP), ("phone", PHONE)):
            page.set_viewport_size(viewport)
            for link, region in PAGES:
                page.get_by_role("link", name=link, exact=True).click()
                expect(page.get_by_role("region", name=region)).to_be_visible()
                assert no_horizontal_scroll(page), f"{link} scrolls sideways at {width} width"
                shot(page, f"page-{link.lower()}-{width}-{theme}-theme")
            page.goto(f"/#/symbol/{SYMBOL}")
            expect(page.get_by_role("region", name="Order ticket")).to_be_visible()
            assert no_horizontal_scroll(page), f"the symbol page scrolls sideways at {width} width"
            shot(page, f"page-symbol-{width}-{theme}-theme")
        page.get_by_role("button", name="Switch theme").click()
