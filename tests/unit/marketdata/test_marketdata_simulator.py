"""The simulator: deterministic, on the tick grid, with a plausible microstructure."""

from __future__ import annotations

import numpy as np
import pytest

from cift.runtime.errors import InvalidArgument
from services.marketdata.instruments import default_universe
from services.marketdata.simulator import KIND_QUOTE, KIND_TRADE, Simulator
from services.marketdata.ticks import SIDE_BUY, SIDE_SELL, Quote, Trade


def make(seed: int = 7, **kwargs: float) -> Simulator:
    return Simulator(default_universe(), seed=seed, **kwargs)  # type: ignore[arg-type]


def test_same_seed_gives_the_same_ticks_whatever_the_batch_sizes() -> None:
    one = make().next_events(3000)
    sim = make()
    pieces = sim.next_events(1) + sim.next_events(999) + sim.next_events(2000)
    assert pieces == one


def test_different_seeds_give_different_ticks() -> None:
    assert make(seed=1).next_events(50) != make(seed=2).next_events(50)


def test_quotes_are_on_the_tick_grid_and_never_crossed() -> None:
    universe = default_universe()
    batch = make().next_batch(20_000)
    quotes = batch.kind == KIND_QUOTE
    for index, instrument in enumerate(universe.instruments):
        mine = quotes & (batch.symbol_index == index)
        bids, asks = batch.bid_units[mine], batch.ask_units[mine]
        assert (asks > bids).all()
        grid = 100 if instrument.start_price >= 1 else 1
        assert (bids % grid == 0).all() and (asks % grid == 0).all()
        assert (batch.bid_size[mine] % instrument.round_lot == 0).all()
        assert (batch.bid_size[mine] > 0).all()


def test_trades_print_at_the_bid_at_the_ask_or_inside_the_last_quote() -> None:
    last: dict[str, Quote] = {}
    sides = set()
    for event in make().next_events(20_000):
        if isinstance(event, Quote):
            last[event.symbol] = event
            continue
        assert isinstance(event, Trade)
        quote = last[event.symbol]  # a symbol always quotes before it trades
        assert quote.bid <= event.price <= quote.ask
        if event.side == SIDE_SELL:
            assert event.price == quote.bid
        elif event.side == SIDE_BUY:
            assert event.price == quote.ask
        sides.add(event.side)
        assert event.size >= 1
    assert len(sides) == 3


def test_timestamps_strictly_increase_and_rate_sets_the_pace() -> None:
    sim = make(rate_per_symbol=100.0)
    batch = sim.next_batch(52_000)
    assert (np.diff(batch.ts_ns) > 0).all()
    elapsed_s = batch.ts_ns[-1] / 1e9
    # 52 symbols x 100 ticks/s: 52,000 events take about 10 simulated seconds.
    assert 9.0 < elapsed_s < 11.0
    assert 0.2 < float((batch.kind == KIND_TRADE).mean()) < 0.3


def test_prices_wander_with_the_configured_volatility() -> None:
    sim = make(rate_per_symbol=1.0)
    batch = sim.next_batch(200_000)
    spy = sim.symbols.index("SPY")
    mine = (batch.kind == KIND_QUOTE) & (batch.symbol_index == spy)
    mids = (batch.bid_units[mine] + batch.ask_units[mine]) / 2.0
    seconds = (batch.ts_ns[mine][-1] - batch.ts_ns[mine][0]) / 1e9
    realised = np.std(np.diff(np.log(mids))) * np.sqrt(mids.size / seconds * 252 * 6.5 * 3600)
    assert 0.10 < realised < 0.20  # SPY is configured at 15 %/year


def test_absurd_settings_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="rate"):
        make(rate_per_symbol=0.0)
    with pytest.raises(InvalidArgument, match="probability"):
        make(trade_probability=1.5)
    with pytest.raises(InvalidArgument, match="seed"):
        make(seed=-1)
    with pytest.raises(InvalidArgument, match="negative"):
        make().next_batch(-1)


def test_a_resumed_walk_starts_at_the_stored_price_and_ignores_one_it_cannot_start_from() -> None:
    universe = default_universe()
    resumed = {"AAPL": 250.0, "MSFT": 0.0, "NVDA": float("nan")}
    ticks = Simulator(universe, seed=7, start_prices=resumed).next_events(2000)
    first: dict[str, float] = {}
    for tick in ticks:
        if isinstance(tick, Quote):
            first.setdefault(tick.symbol, (tick.bid + tick.ask) / 2)
    start = {i.symbol: float(i.start_price) for i in universe.instruments}
    assert first["AAPL"] == pytest.approx(250.0, rel=0.002)
    assert first["MSFT"] == pytest.approx(start["MSFT"], rel=0.002)
    assert first["NVDA"] == pytest.approx(start["NVDA"], rel=0.002)
