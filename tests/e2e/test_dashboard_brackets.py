"""Order classes on the dashboard's ticket, in a real browser against the whole mesh.

A trader places a bracket order (a resting limit entry with a take-profit limit and a
stop-loss stop) and sees its two exit legs held under it in open orders; replacing the
held stop-loss moves it and keeps it under its parent; canceling the parent cancels them, and the order history shows the three together. An OTO entry with a
trailing stop-loss shows its one leg. A bracket whose take-profit is below a buy entry
is refused, and the server's message appears by the take-profit field. Screenshots at
laptop and phone width, in both themes, go to build/e2e-screenshots/.
"""

from __future__ import annotations

import re
import uuid
from decimal import ROUND_DOWN, Decimal

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.browser import PHONE
from tests.e2e.dashboard import (  # noqa: F401 (fixtures)
    browser_fixture,
    console_fixture,
    no_horizontal_scroll,
    page_fixture,
    shot,
    sign_in,
    submit,
    ticket_field,
)
from tests.e2e.e2e_client import SYMBOL

pytestmark = pytest.mark.integration

CENT = Decimal("0.01")
HELD = "Held (waits for its entry)"


def price(market: Decimal, factor: str) -> str:
    return str((market * Decimal(factor)).quantize(CENT, rounding=ROUND_DOWN))


def market_bid(page: Page) -> Decimal:
    quote = page.get_by_test_id("symbol-quote")
    expect(quote).to_contain_text("Bid")
    return Decimal(quote.inner_text().split("Bid ")[1].split(" ")[0].replace(",", ""))


def legs_of(region: Locator, parent_id: str) -> Locator:
    return region.locator(f'tr[data-parent-order-id="{parent_id}"]')


def test_a_trader_places_and_cancels_a_bracket_and_sees_its_legs(page: Page) -> None:
    page.goto("/")
    sign_in(page, f"web-br-{uuid.uuid4().hex[:12]}@example.com", button="Register")
    page.goto(f"/#/symbol/{SYMBOL}")
    market = market_bid(page)
    entry, take, stop = price(market, "0.95"), price(market, "1.05"), price(market, "0.90")

    # A bracket: limit buy under the market, take-profit above it, stop-loss under it.
    ticket_field(page, "Order class").select_option(label="Bracket")
    ticket_field(page, "Order type").select_option(label="Limit")
    ticket_field(page, "Quantity").fill("1")
    ticket_field(page, "Limit price").fill(entry)
    ticket_field(page, "Time in force").select_option(label="GTC")
    ticket_field(page, "Take-profit limit price").fill(take)
    ticket_field(page, "Stop-loss type").select_option(label="Stop")
    ticket_field(page, "Stop-loss stop price").fill(stop)
    submit(page)
    expect(page.get_by_test_id("order-result")).to_contain_text("with 2 exit legs")

    open_orders = page.get_by_role("region", name="Open orders")
    parent = open_orders.locator("tr[data-order-id]:not([data-parent-order-id])").filter(
        has_text=f"limit ${entry}"
    )
    expect(parent).to_have_count(1)
    expect(parent.get_by_test_id("order-kind")).to_have_text("Limit · Bracket")
    parent_id = parent.get_attribute("data-order-id") or ""
    legs = legs_of(open_orders, parent_id)
    expect(legs).to_have_count(2)
    # Each leg right under its parent, take-profit first, both waiting for the entry.
    expect(legs.nth(0).get_by_test_id("order-kind")).to_have_text("Take profit · Limit")
    expect(legs.nth(0)).to_contain_text(f"limit ${take}")
    expect(legs.nth(1).get_by_test_id("order-kind")).to_have_text("Stop loss · Stop")
    expect(legs.nth(1)).to_contain_text(f"stop ${stop}")
    for index in range(2):
        expect(legs.nth(index).get_by_test_id("order-status")).to_have_text(HELD)
    assert parent.evaluate(
        "(row, id) => row.nextElementSibling.dataset.parentOrderId === id", parent_id
    )
    shot(page, "bracket-open")

    # A take-profit under a buy entry: the server's message, by the take-profit field.
    ticket_field(page, "Take-profit limit price").fill(price(market, "0.90"))
    submit(page)
    error = page.locator('[data-error-for="take_profit.limit_price"]')
    expect(error).to_contain_text("take_profit.limit_price")
    expect(error).to_contain_text("must be above the entry price")
    assert error.evaluate(
        "(node) => node.previousElementSibling.id === 'ticket-take_profit.limit_price'"
    )
    shot(page, "bracket-error")

    # An OTO with a trailing stop-loss alone: one leg.
    ticket_field(page, "Order class").select_option(label="OTO (one triggers other)")
    ticket_field(page, "Take-profit limit price").fill("")
    ticket_field(page, "Stop-loss type").select_option(label="Trailing (%)")
    ticket_field(page, "Stop-loss trail percent").fill("5")
    ticket_field(page, "Limit price").fill(price(market, "0.94"))
    submit(page)
    expect(error).to_have_count(0)
    expect(page.get_by_test_id("order-result")).to_contain_text("with 1 exit leg")
    oto = open_orders.locator("tr[data-order-id]:not([data-parent-order-id])").filter(
        has_text="Limit · OTO"
    )
    expect(oto).to_have_count(1)
    oto_legs = legs_of(open_orders, oto.get_attribute("data-order-id") or "")
    expect(oto_legs).to_have_count(1)
    expect(oto_legs.get_by_test_id("order-kind")).to_have_text("Stop loss · Trailing stop")
    expect(oto_legs).to_contain_text("trail 5%")

    # Replacing a held leg: the stop-loss moves and still waits under its parent.
    new_stop = price(market, "0.89")
    legs.filter(has_text=f"stop ${stop}").get_by_role("button", name="Replace").click()
    open_orders.get_by_label("New stop price").fill(new_stop)
    open_orders.get_by_role("button", name="Replace order").click()
    moved = legs.filter(has_text=f"stop ${new_stop}")
    expect(moved).to_have_count(1)
    expect(moved.get_by_test_id("order-status")).to_have_text(HELD)
    expect(legs.filter(has_text=f"stop ${stop}")).to_have_count(0)
    expect(legs).to_have_count(2)

    # Canceling the bracket's parent cancels its legs.
    parent.get_by_role("button", name="Cancel").click()
    expect(parent).to_have_count(0)
    expect(legs).to_have_count(0)

    page.get_by_role("link", name="Orders").click()
    history = page.get_by_role("region", name="Order history")
    canceled_parent = history.locator(f'tr[data-order-id="{parent_id}"]')
    expect(canceled_parent.get_by_test_id("order-status")).to_have_text("Canceled")
    history_legs = legs_of(history, parent_id)
    # The replaced stop-loss stays in the history beside the two canceled legs.
    expect(history_legs).to_have_count(3)
    statuses = history_legs.get_by_test_id("order-status")
    expect(statuses.filter(has_text="Canceled")).to_have_count(2)
    expect(statuses.filter(has_text="Replaced")).to_have_count(1)
    expect(history_legs.nth(0).get_by_test_id("order-kind")).to_have_text(re.compile("Take profit"))
    shot(page, "bracket-history")

    # The ticket with exits in the other theme, and at a phone's width.
    page.goto(f"/#/symbol/{SYMBOL}")
    ticket_field(page, "Order class").select_option(label="Bracket")
    ticket_field(page, "Stop-loss type").select_option(label="Stop limit")
    expect(ticket_field(page, "Stop-loss limit price")).to_be_visible()
    page.get_by_role("button", name="Switch theme").click()
    shot(page, "bracket-ticket-other-theme")
    page.set_viewport_size(PHONE)
    assert no_horizontal_scroll(page)
    shot(page, "bracket-ticket-phone")
    page.get_by_role("link", name="Orders").click()
    expect(history_legs).to_have_count(3)
    assert no_horizontal_scroll(page)
    shot(page, "orders-phone")
