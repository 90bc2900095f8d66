"""Where a signal strategy can act, the tape an event run records, and what a run leaves behind."""

from __future__ import annotations

import gc
from decimal import Decimal

import numpy as np

from cift.backtest import run_backtest, split_bars
from cift.backtest.broker import TapeEvent, TapeTick
from cift.backtest.event import Strategy, run_event, turns
from cift.backtest.synthetic import random_walk_bars
from cift.trading.fills import Fill
from cift.trading.orders import Order

NAN = np.nan


def test_turns_are_the_bars_where_the_held_direction_changes() -> None:
    targets = np.array([NAN, 0.0, 2.0, NAN, 0.5, -1.0, NAN, 0.0, 0.0, 1.0, -3.0])
    bars, wants = turns(targets)
    assert bars.tolist() == [2, 5, 7, 9, 10]
    assert wants == [1, -1, 0, 1, -1]


def test_no_turn_when_the_target_never_leaves_flat() -> None:
    bars, wants = turns(np.array([NAN, 0.0, NAN, 0.0]))
    assert bars.tolist() == [] and wants == []


class OneLimit(Strategy):
    def on_bar(self) -> None:
        if self.i == 0:
            self.buy(2, limit=99.9)


def test_the_tape_has_each_tick_then_the_order_then_its_fill_in_order() -> None:
    bars = split_bars(random_walk_bars(200, seed=3))
    tape: list[TapeEvent] = []
    run_event(bars, OneLimit, {}, 10_000.0, 0.0, None, tape=tape)
    kinds = [type(e).__name__ for e in tape]
    assert kinds[:2] == ["TapeTick", "Order"]  # the next open, then the order enters
    fills = [e for e in tape if isinstance(e, Fill)]
    assert len(fills) == 1 and fills[0].price == Decimal("99.9")
    before = tape[tape.index(fills[0]) - 1]
    assert isinstance(before, TapeTick) and before.price == Decimal("99.9")
    assert sum(isinstance(e, Order) for e in tape) == 1


def test_an_event_run_sets_off_no_garbage_collection() -> None:
    """Nothing is kept per fill that the collector tracks (the fill log is one flat list).

    A collection set off mid-run walks every tracked object of the process, and a
    process that has loaded pandas or run other backtests has many: with a tuple per
    fill, 1,528 fills here set off two, and a 1M-bar run a full one.
    """
    frame = random_walk_bars(20_000)
    params = {"fast": 10, "slow": 30}
    run_backtest(frame.head(2_000), "sma_cross", params, engine="event")  # imports, kernels
    collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.collect()  # start from an empty young generation
    gc.callbacks.append(count)
    try:
        result = run_backtest(frame, "sma_cross", params, engine="event")
    finally:
        gc.callbacks.remove(count)
    assert result.stats["trades"] == 764
    assert collections == []
