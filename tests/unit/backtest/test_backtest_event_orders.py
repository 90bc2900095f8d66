"""The event engine's orders behave as on the paper account: limits, stops, trails, brackets.

Bars are written by hand so each fill price can be checked to the cent. Each bar
is replayed open, then the near extreme (low first on an up bar), the far one,
the close, with every resting order's level passed on the way.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, ClassVar

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cift.backtest import Strategy, run_backtest
from cift.backtest.synthetic import random_walk_bars


def bars(*ohlc: tuple[float, float, float, float]) -> pl.DataFrame:
    start = datetime(2024, 1, 2)
    return pl.DataFrame(
        {
            "timestamp": [start + timedelta(days=k) for k in range(len(ohlc))],
            "open": [b[0] for b in ohlc],
            "high": [b[1] for b in ohlc],
            "low": [b[2] for b in ohlc],
            "close": [b[3] for b in ohlc],
            "volume": [1000.0] * len(ohlc),
        }
    )


class Script(Strategy):
    """Places the orders of `plan[bar]` at that bar's close."""

    plan: ClassVar[dict[int, list[tuple[str, dict[str, Any]]]]] = {}

    def on_bar(self) -> None:
        for side, order in self.plan.get(self.i, []):
            getattr(self, side)(**order)


def run(frame: pl.DataFrame, plan: dict[int, list[tuple[str, dict[str, Any]]]], **kw: Any) -> Any:
    script = type("Plan", (Script,), {"plan": plan})
    return run_backtest(frame, script, engine="event", cash=100_000, **kw)


FLAT = (100.0, 100.5, 99.5, 100.0)


def test_market_order_fills_at_the_next_open() -> None:
    result = run(bars(FLAT, (101.0, 102.0, 100.0, 101.5), FLAT), {0: [("buy", {"qty": 10})],
                 1: [("sell", {"qty": 10})]})  # fmt: skip
    trade = result.trades.row(0, named=True)
    assert (trade["entry_bar"], trade["entry_price"]) == (1, 101.0)
    assert (trade["exit_bar"], trade["exit_price"]) == (2, 100.0)
    assert trade["pnl"] == pytest.approx(-10.0)


def test_limit_buy_fills_at_its_limit_when_the_bar_falls_through_it() -> None:
    result = run(bars(FLAT, (100.0, 100.2, 97.0, 99.0), FLAT),
                 {0: [("buy", {"qty": 10, "limit": 98.0})], 1: [("sell", {"qty": 10})]})  # fmt: skip
    assert result.trades["entry_price"][0] == 98.0


def test_limit_buy_fills_at_a_gap_open_below_it() -> None:
    result = run(bars(FLAT, (96.0, 97.0, 95.5, 96.5), FLAT),
                 {0: [("buy", {"qty": 10, "limit": 98.0})], 1: [("sell", {"qty": 10})]})  # fmt: skip
    assert result.trades["entry_price"][0] == 96.0


def test_limit_buy_rests_until_the_price_reaches_it() -> None:
    result = run(bars(FLAT, FLAT, (100.0, 100.1, 98.5, 99.0), FLAT),
                 {0: [("buy", {"qty": 5, "limit": 99.0})], 2: [("sell", {"qty": 5})]})  # fmt: skip
    trade = result.trades.row(0, named=True)
    assert (trade["entry_bar"], trade["entry_price"]) == (2, 99.0)


def test_stop_buy_triggers_at_its_stop_and_fills_there() -> None:
    result = run(bars(FLAT, (100.0, 106.0, 99.8, 105.0), FLAT),
                 {0: [("buy", {"qty": 10, "stop": 103.0})], 1: [("sell", {"qty": 10})]})  # fmt: skip
    assert result.trades["entry_price"][0] == 103.0


def test_trailing_sell_stop_follows_the_high_and_sells_on_the_pullback() -> None:
    frame = bars(FLAT, FLAT, (100.0, 110.0, 99.9, 109.0), (109.0, 109.5, 104.0, 105.0), FLAT)
    result = run(frame, {0: [("buy", {"qty": 10})], 1: [("sell", {"qty": 10, "trail_price": 3.0})]})
    trade = result.trades.row(0, named=True)
    # Entered at bar 1's open (100); the high-water mark reached 110 in bar 2, and the
    # fall in bar 3 passed 107 = 110 - 3 on its way to 104.
    assert (trade["exit_bar"], trade["exit_price"]) == (3, 107.0)


def test_bracket_take_profit_fills_and_cancels_the_stop_loss() -> None:
    frame = bars(FLAT, FLAT, (100.0, 104.0, 99.9, 103.5), (103.0, 103.2, 90.0, 91.0), FLAT)
    result = run(frame, {0: [("buy", {"qty": 10, "take_profit": 103.0, "stop_loss": 95.0})]})
    assert result.trades.height == 1
    trade = result.trades.row(0, named=True)
    assert (trade["entry_price"], trade["exit_bar"], trade["exit_price"]) == (100.0, 2, 103.0)
    assert result.equity["position_ASSET"].to_list() == [0, 10, 0, 0, 0]


def test_bracket_stop_loss_fills_at_its_stop_on_a_fall() -> None:
    frame = bars(FLAT, FLAT, (100.0, 100.4, 94.0, 94.5), FLAT)
    result = run(frame, {0: [("buy", {"qty": 10, "take_profit": 103.0, "stop_loss": 95.0})]})
    trade = result.trades.row(0, named=True)
    assert (trade["exit_bar"], trade["exit_price"]) == (2, 95.0)


def test_commission_is_charged_per_fill_to_the_cent() -> None:
    result = run(bars(FLAT, (101.0, 102.0, 100.0, 101.5), (100.0, 100.5, 99.5, 100.0)),
                 {0: [("buy", {"qty": 7})], 1: [("sell", {"qty": 7})]}, commission=0.001)  # fmt: skip
    # 7 * 101 * 0.001 = 0.707 -> 0.71; 7 * 100 * 0.001 = 0.70.
    assert result.stats["commissions"] == pytest.approx(1.41)
    assert result.stats["final_equity"] == pytest.approx(100_000 - 7 - 1.41)


def test_canceled_order_never_fills() -> None:
    class Cancel(Strategy):
        def on_bar(self) -> None:
            if self.i == 0:
                self.order = self.buy(10, limit=90.0)
            elif self.i == 1:
                assert self.cancel(self.order)

    result = run_backtest(bars(FLAT, FLAT, (100.0, 100.0, 80.0, 85.0)), Cancel, engine="event")
    assert result.trades.height == 0
    assert result.equity["position_ASSET"].to_list() == [0, 0, 0]


def test_several_symbols_share_one_ledger_with_equal_sleeves() -> None:
    frame = pl.concat(
        [random_walk_bars(400, seed=1, symbol="AAA"), random_walk_bars(400, seed=2, symbol="BBB")]
    )
    vector = run_backtest(frame, "sma_cross", {"fast": 5, "slow": 20}, engine="vector")
    event = run_backtest(frame, "sma_cross", {"fast": 5, "slow": 20}, engine="event")
    assert set(event.trades["symbol"]) == {"AAA", "BBB"}
    columns = ["symbol", "entry_bar", "exit_bar", "size", "entry_price", "exit_price"]
    assert (
        event.trades.select(columns)
        .sort(columns)
        .equals(vector.trades.select(columns).sort(columns))
    )
    assert event.stats["final_equity"] == pytest.approx(vector.stats["final_equity"], abs=0.01)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), fast=st.integers(2, 8), gap=st.integers(1, 20))
def test_engines_agree_on_any_walk_without_commission(seed: int, fast: int, gap: int) -> None:
    """Without commission no cent rounding separates them: same trades, same equity."""
    frame = random_walk_bars(300, seed=seed)
    params = {"fast": fast, "slow": fast + gap}
    vector = run_backtest(frame, "sma_cross", params, engine="vector")
    event = run_backtest(frame, "sma_cross", params, engine="event")
    columns = ["entry_bar", "exit_bar", "size", "entry_price", "exit_price"]
    assert event.trades.select(columns).equals(vector.trades.select(columns))
    assert event.stats["final_equity"] == pytest.approx(vector.stats["final_equity"], abs=1e-6)
