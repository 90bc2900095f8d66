"""The event engine refuses what the live pre-trade path refuses, and says so.

Each order a strategy places is priced for its buying-power reservation and judged
by the risk service's rules before it may enter the fill engine; a refused order
never fills, and is listed in `result.rejections` and counted in the stats.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import polars as pl
import pytest

from cift.backtest import Strategy, run_backtest
from cift.runtime.errors import InvalidArgument
from cift.trading.pretrade.limits import RiskLimits
from tests.unit.backtest.test_backtest_event_orders import FLAT, Script, bars, run

UP = (101.0, 102.0, 100.0, 101.5)


def reasons(result: Any) -> list[str]:
    assert result.rejections is not None
    return list(result.rejections["reason"])


def test_an_order_beyond_buying_power_is_refused_and_listed() -> None:
    # 100,000 of cash buys 990 shares at 101; 2,000 is beyond it.
    result = run(bars(FLAT, UP, FLAT), {0: [("buy", {"qty": 2000})]})
    assert result.trades.height == 0
    assert result.equity["position_ASSET"].to_list() == [0.0, 0.0, 0.0]
    assert result.stats["rejected_orders"] == 1
    row = result.rejections.row(0, named=True)
    assert (row["bar"], row["side"], row["order_type"], row["qty"]) == (1, "buy", "market", 2000)
    assert row["reason"] == "INSUFFICIENT_BUYING_POWER"
    assert row["message"] == (
        "This order needs $202,000.00 of buying power; $100,000.00 is available."
    )


def test_an_affordable_order_passes_and_nothing_is_rejected() -> None:
    result = run(bars(FLAT, UP, FLAT), {0: [("buy", {"qty": 990})], 1: [("sell", {"qty": 990})]})
    assert result.trades.height == 1
    assert result.stats["rejected_orders"] == 0
    assert result.rejections is not None and result.rejections.height == 0


def test_margin_multiplier_gives_the_buying_power_of_a_margin_account() -> None:
    plan = {0: [("buy", {"qty": 1500})], 1: [("sell", {"qty": 1500})]}
    # On a cash account the buy is refused, and so is the sell: with nothing held it
    # would open a short of the same size.
    assert reasons(run(bars(FLAT, UP, FLAT), plan)) == ["INSUFFICIENT_BUYING_POWER"] * 2
    result = run(bars(FLAT, UP, FLAT), plan, margin_multiplier=2)
    assert reasons(result) == []
    assert result.trades["size"].to_list() == [1500.0]


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        (RiskLimits(max_order_qty=Decimal(50)), "MAX_ORDER_QTY"),
        (RiskLimits(max_order_notional=Decimal(5_000)), "MAX_ORDER_NOTIONAL"),
        (RiskLimits(max_position_qty=Decimal(80)), "MAX_POSITION_QTY"),
        (RiskLimits(max_gross_exposure=Decimal(9_000)), "MAX_GROSS_EXPOSURE"),
    ],
)
def test_configured_limits_refuse_an_order_over_them(limits: RiskLimits, reason: str) -> None:
    plan = {0: [("buy", {"qty": 100}), ("buy", {"qty": 10})]}
    result = run(bars(FLAT, UP, FLAT), plan, limits=limits)
    assert reasons(result) == [reason]
    # The order within the limit went through.
    assert result.equity["position_ASSET"][-1] == 10.0


def test_the_default_limits_are_a_new_live_accounts() -> None:
    """RiskLimits() caps one order at 10,000 shares, even with the cash for more."""
    script = type("Big", (Script,), {"plan": {0: [("buy", {"qty": 10_001})]}})
    result = run_backtest(bars(FLAT, UP, FLAT), script, engine="event", cash=10_000_000)
    assert reasons(result) == ["MAX_ORDER_QTY"]


def test_a_limit_far_from_the_market_is_a_fat_finger() -> None:
    # 10% collar around the open of 101: a buy limit at 80 is refused, one at 95 rests.
    plan = {0: [("buy", {"qty": 10, "limit": 80.0}), ("buy", {"qty": 10, "limit": 95.0})]}
    result = run(bars(FLAT, UP, FLAT), plan)
    assert reasons(result) == ["PRICE_COLLAR"]


def test_shorts_are_refused_when_the_account_may_not_short() -> None:
    plan = {0: [("sell", {"qty": 10})], 1: [("buy", {"qty": 10})], 2: [("sell", {"qty": 10})]}
    result = run(bars(FLAT, UP, FLAT, FLAT), plan, limits=RiskLimits(allow_short=False))
    # The short is refused; the long bought after it sells fine.
    assert reasons(result) == ["SHORT_NOT_ALLOWED"]
    assert result.trades["size"].to_list() == [10.0]


def test_a_resting_order_holds_its_buying_power_until_canceled() -> None:
    plan: dict[int, list[tuple[str, dict[str, Any]]]] = {
        0: [("buy", {"qty": 900, "limit": 95.0})],  # reserves 85,500
        1: [("buy", {"qty": 300, "limit": 95.0})],  # 28,500 more: beyond the 14,500 left
    }
    result = run(bars(FLAT, UP, UP, FLAT), plan)
    assert reasons(result) == ["INSUFFICIENT_BUYING_POWER"]
    assert "$14,500.00 is available" in result.rejections["message"][0]


def test_a_cancel_gives_the_reservation_back() -> None:
    class Plan(Strategy):
        resting = ""

        def on_bar(self) -> None:
            if self.i == 0:
                self.resting = self.buy(900, limit=95.0)
            elif self.i == 1:
                self.cancel(self.resting)
                self.buy(300, limit=95.0)

    result = run_backtest(bars(FLAT, UP, UP, FLAT), Plan, engine="event", cash=100_000)
    assert reasons(result) == []


def test_a_one_order_reversal_is_refused_on_a_cash_account() -> None:
    """Long all in, then one sell through zero: the short side needs buying power first."""
    plan = {0: [("buy", {"qty": 990})], 1: [("sell", {"qty": 1980})]}
    result = run(bars(FLAT, UP, FLAT, FLAT), plan)
    assert reasons(result) == ["INSUFFICIENT_BUYING_POWER"]
    assert result.equity["position_ASSET"][-1] == 990.0


def test_sma_cross_reverses_as_close_then_open_without_a_rejection(
    goog: pl.DataFrame,
) -> None:
    params = {"fast": 10, "slow": 30}
    event = run_backtest(goog, "sma_cross", params, 10_000, 0.002, "event")
    vector = run_backtest(goog, "sma_cross", params, 10_000, 0.002, "vector")
    assert event.stats["rejected_orders"] == 0
    assert event.trades.select("entry_bar", "size").equals(
        vector.trades.select("entry_bar", "size")
    )


def test_a_strategy_refused_every_entry_makes_no_trade(goog: pl.DataFrame) -> None:
    result = run_backtest(
        goog, "sma_cross", {"fast": 10, "slow": 30}, 10_000, 0.002, "event",
        limits=RiskLimits(max_order_notional=Decimal(1_000)),
    )  # fmt: skip
    assert result.trades.height == 0
    assert result.stats["final_equity"] == 10_000
    # Every entry at a turn is refused (nothing is held, so there is nothing to close).
    assert set(reasons(result)) == {"MAX_ORDER_NOTIONAL"}
    assert result.stats["rejected_orders"] == len(reasons(result)) == 66


def test_the_vector_engine_takes_no_limits_or_margin(goog: pl.DataFrame) -> None:
    with pytest.raises(InvalidArgument, match="event engine"):
        run_backtest(goog, "sma_cross", limits=RiskLimits())
    with pytest.raises(InvalidArgument, match="event engine"):
        run_backtest(goog, "sma_cross", margin_multiplier=2)
    assert "rejected_orders" not in run_backtest(goog, "sma_cross").stats


@pytest.mark.parametrize("margin", [0.5, 5, float("nan"), "x"])
def test_a_bad_margin_multiplier_is_invalid(goog: pl.DataFrame, margin: Any) -> None:
    with pytest.raises(InvalidArgument, match="margin_multiplier"):
        run_backtest(goog, "sma_cross", engine="event", margin_multiplier=margin)


def test_bad_limits_are_invalid(goog: pl.DataFrame) -> None:
    with pytest.raises(InvalidArgument, match="max_order_qty"):
        run_backtest(goog, "sma_cross", engine="event", limits=RiskLimits(max_order_qty=Decimal(0)))
