"""The dashboard's Backtests page in a real browser against the whole mesh.

History is stored in market data's bars first (as the backtest integration tests do):
GOOG's daily bars of 2004-2013 (backtesting.py's sample, whose sma_cross 10/30 result is
known to the cent) and INTC minute bars enough to keep the event engine busy. A trader
opens Backtests, gets the server's refusal of fast ≥ slow next to the fast field, runs
sma_cross on GOOG and sees the stats, the equity curve and the trades, opens the run again
from the past runs, sets the event engine's risk inputs (a bad limit refused by its
field, a small one refusing the strategy's orders), and cancels a long event-engine run
while it reports progress.
Screenshots at laptop and phone width, in both themes, go to build/e2e-screenshots/.
"""

from __future__ import annotations

import asyncio
import re
import uuid

import asyncpg
import pytest
from playwright.sync_api import Locator, Page, expect

from cift.backtest.synthetic import random_walk_bars
from cift.stack.launcher import StackInfo
from tests.e2e.browser import PHONE
from tests.e2e.dashboard import (  # noqa: F401 (fixtures)
    browser_fixture,
    console_fixture,
    no_horizontal_scroll,
    page_fixture,
    shot,
    sign_in,
)
from tests.integration.backtest.conftest import goog_daily, store_bars

pytestmark = pytest.mark.integration

# Not NFLX: the backtest integration tests share this session's stack and count
# their own NFLX minute bars exactly.
LONG_SYMBOL = "INTC"
LONG_BARS = 1_000_000
# What backtesting.py 0.6.6 and the library give for GOOG sma_cross 10/30, cash 10,000,
# commission 0.002 (docs/BACKTEST.md): 65 trades, final equity 39,770.03.
GOOG_TRADES = 65
GOOG_FINAL = "$39,770.03"


@pytest.fixture(scope="module")
def stored_history(stack: StackInfo) -> None:
    async def seed() -> None:
        conn = await asyncpg.connect(stack.database_url)
        try:
            await store_bars(conn, "GOOG", "1Day", goog_daily())
            await store_bars(
                conn, LONG_SYMBOL, "1Min", random_walk_bars(LONG_BARS, start="2021-01-04")
            )
        finally:
            await conn.close()

    asyncio.run(seed())


def field(page: Page, label: str) -> Locator:
    return page.get_by_role("region", name="New backtest").get_by_label(label, exact=True)


def run(page: Page) -> None:
    page.get_by_role("button", name="Run backtest").click()


@pytest.mark.usefixtures("stored_history")
def test_a_trader_runs_reads_reopens_and_cancels_backtests(page: Page) -> None:
    page.goto("/")
    sign_in(page, f"web-bt-{uuid.uuid4().hex[:12]}@example.com", button="Register")
    page.get_by_role("link", name="Backtests").click()
    expect(page.get_by_role("region", name="New backtest")).to_be_visible()

    # The built-in strategies, with their parameters at their defaults.
    field(page, "Strategy").select_option("sma_cross")
    expect(field(page, "fast")).not_to_have_value("")
    field(page, "Symbol").fill("GOOG")
    field(page, "Symbol").press("Tab")
    field(page, "Timeframe").select_option("1Day")
    # Where GOOG's stored daily bars begin, offered as the range.
    expect(page.get_by_test_id("stored-bars")).to_contain_text("2004-08-19")
    page.get_by_role("button", name="Use all stored bars").click()
    expect(field(page, "Start")).to_have_value("2004-08-19")
    # The sample ends in 2013; market data's simulator writes a daily bar of today.
    field(page, "End").fill("2014-01-01")
    field(page, "Cash").fill("10000")
    field(page, "Commission").fill("0.002")
    field(page, "Engine").select_option("vector")

    # fast ≥ slow: the server's message, by the fast field.
    field(page, "fast").fill("30")
    field(page, "slow").fill("10")
    run(page)
    error = page.locator('[data-error-for="param:fast"]')
    expect(error).to_contain_text("fast (30) must be shorter than slow (10)")
    assert error.evaluate("(node) => node.previousElementSibling.id === 'backtest-param-fast'")
    shot(page, "backtest-error")

    # sma_cross 10/30: the known result, its equity curve and its 65 trades.
    field(page, "fast").fill("10")
    field(page, "slow").fill("30")
    run(page)
    result = page.get_by_role("region", name="Backtest result")
    expect(result.get_by_test_id("backtest-status")).to_have_text("Succeeded", timeout=60_000)
    expect(error).to_have_count(0)
    expect(result.locator('[data-stat="Final equity"]')).to_have_text(GOOG_FINAL)
    expect(result.locator('[data-stat="Trades"]')).to_have_text(str(GOOG_TRADES))
    expect(result.locator('[data-stat="Return"]')).to_have_text(re.compile(r"^\+[\d,]+\.\d{2}%$"))
    trades = result.get_by_test_id("backtest-trade")
    expect(trades).to_have_count(GOOG_TRADES)
    expect(trades.first).to_contain_text("2004")
    expect(trades.first.locator("td").nth(4)).to_have_text(re.compile(r"^\$[\d,]+\.\d{2}$"))
    chart = result.get_by_test_id("equity-chart")
    expect(chart.locator("canvas").first).to_be_visible()
    assert int(chart.get_attribute("data-points") or 0) > 2000
    run_id = result.get_attribute("data-backtest-id")
    shot(page, "backtest-result")

    # The run is in the past runs; opening it shows the same result again.
    past = page.get_by_role("region", name="Past backtests").locator(
        f'tr[data-backtest-id="{run_id}"]'
    )
    expect(past).to_contain_text(GOOG_FINAL)
    page.get_by_role("link", name="Dashboard").click()
    page.get_by_role("link", name="Backtests").click()
    expect(result).to_have_count(0)
    past.get_by_role("button", name="Open").click()
    expect(result.locator('[data-stat="Final equity"]')).to_have_text(GOOG_FINAL)
    expect(result.get_by_test_id("backtest-trade")).to_have_count(GOOG_TRADES)

    # The event engine's pre-trade risk inputs: a limit no control can work with is the
    # server's refusal by that input; a small one refuses the strategy's orders.
    field(page, "Engine").select_option("event")
    risk = page.get_by_role("group", name="Pre-trade risk")
    expect(risk).to_be_visible()
    expect(field(page, "Max order qty")).to_have_attribute("placeholder", "10,000")
    field(page, "Max order qty").fill("0")
    run(page)
    limit_error = page.locator('[data-error-for="limit:max_order_qty"]')
    expect(limit_error).to_contain_text("max_order_qty must be greater than zero")
    assert limit_error.evaluate(
        "(node) => node.previousElementSibling.id === 'backtest-limit-max_order_qty'"
    )
    shot(page, "backtest-risk-error")
    field(page, "Max order qty").fill("5")
    field(page, "Margin multiplier").fill("2")
    field(page, "Short selling").select_option("false")
    run(page)
    expect(result.get_by_test_id("backtest-status")).to_have_text("Succeeded", timeout=60_000)
    expect(limit_error).to_have_count(0)
    expect(result.locator('[data-stat="Trades"]')).to_have_text("0")
    expect(result.locator('[data-stat="Rejected orders"]')).not_to_have_text("0")
    # Each buy is over 5 shares; each sell would open a short, which the account may not.
    refused = result.get_by_role("region", name="Rejected orders")
    expect(refused.get_by_test_id("backtest-rejection").first).to_be_visible()
    expect(refused).to_contain_text("MAX_ORDER_QTY")
    expect(refused).to_contain_text("SHORT_NOT_ALLOWED")
    shot(page, "backtest-risk-refusals")
    # Back to a new account's limits for the long run.
    field(page, "Max order qty").fill("")
    field(page, "Margin multiplier").fill("")
    field(page, "Short selling").select_option("")

    # A long event-engine run reports progress and can be canceled.
    field(page, "Symbol").fill(LONG_SYMBOL)
    field(page, "Timeframe").select_option("1Min")
    field(page, "Start").fill("2021-01-01")
    field(page, "End").fill("2023-01-01")
    field(page, "Engine").select_option("event")
    # The event engine visits only the bars where the signal turns: a 2/3 cross turns
    # every few bars, so a million of them is seconds of fills and the cancel lands.
    field(page, "fast").fill("2")
    field(page, "slow").fill("3")
    run(page)
    cancel = page.get_by_role("button", name="Cancel backtest")
    expect(cancel).to_be_enabled(timeout=60_000)
    expect(page.get_by_test_id("backtest-progress")).to_contain_text("%")
    shot(page, "backtest-running")
    cancel.click()
    expect(result.get_by_test_id("backtest-status")).to_have_text("Canceled", timeout=60_000)
    expect(page.get_by_role("button", name="Run backtest")).to_be_visible(timeout=60_000)

    # The other theme, and a phone's width.
    past.get_by_role("button", name="Open").click()
    expect(result.locator('[data-stat="Final equity"]')).to_have_text(GOOG_FINAL)
    page.get_by_role("button", name="Switch theme").click()
    shot(page, "backtest-other-theme")
    page.set_viewport_size(PHONE)
    expect(result.get_by_test_id("equity-chart").locator("canvas").first).to_be_visible()
    assert no_horizontal_scroll(page)
    shot(page, "backtest-phone")
