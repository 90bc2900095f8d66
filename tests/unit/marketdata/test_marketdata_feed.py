"""The feed: pacing sources against the clock and stamping ticks with growing sequences."""

from __future__ import annotations

import asyncio
import operator
import time
from types import SimpleNamespace
from typing import Any, cast

import pytest

from cift.marketdata.v1 import events_pb2, marketdata_pb2
from cift.runtime.errors import InvalidArgument
from services.marketdata import store
from services.marketdata.__main__ import new_simulator, prepared_simulator, tick_source
from services.marketdata.bars import Bar, BarBuilder
from services.marketdata.config import MarketDataConfig
from services.marketdata.events import tick_event_bytes
from services.marketdata.feed import (
    CATCH_UP_TICKS_PER_S,
    MAX_TICKS_PER_INTERVAL,
    FeedRunner,
    ReplaySource,
    SimulatorSource,
)
from services.marketdata.instruments import default_universe
from services.marketdata.sim_history import simulate_past
from services.marketdata.simulator import Simulator
from services.marketdata.ticks import Quote, Tick, Trade

S = 1_000_000_000


def simulator_source(rate: float = 10.0) -> SimulatorSource:
    return SimulatorSource(
        Simulator(default_universe(), seed=3, rate_per_symbol=rate, start_ns=100 * S)
    )


def test_simulator_source_releases_only_ticks_whose_time_has_come() -> None:
    source = simulator_source()
    assert source.due(100 * S) == []
    first = source.due(101 * S)
    # 52 symbols x 10 ticks/s for one second.
    assert 400 < len(first) < 650
    assert all(100 * S < t.ts_ns <= 101 * S for t in first)
    second = source.due(102 * S)
    assert all(101 * S < t.ts_ns <= 102 * S for t in second)
    assert not source.finished


def test_a_fast_simulator_is_capped_per_interval_and_catches_up_later() -> None:
    source = simulator_source(rate=100_000.0)
    burst = source.due(110 * S)
    assert len(burst) == MAX_TICKS_PER_INTERVAL
    assert source.due(110 * S)[0].ts_ns > burst[-1].ts_ns


def test_a_simulator_behind_the_clock_catches_up_at_its_pace_and_then_runs_on() -> None:
    now_ns = time.time_ns()
    source = SimulatorSource(
        Simulator(default_universe(), seed=3, rate_per_symbol=1.0, start_ns=now_ns - 60 * S)
    )
    # The first call releases one interval's worth at the catch-up pace, from the start.
    first = source.due(now_ns)
    assert len(first) == int(CATCH_UP_TICKS_PER_S * 0.01)
    assert now_ns - 60 * S <= first[0].ts_ns < now_ns - 55 * S
    # 50 ms later, at most 50 ms at that pace more: small batches, not a burst.
    second = source.due(now_ns + S // 20)
    assert len(second) == CATCH_UP_TICKS_PER_S // 20
    # Within a second the rest (52 symbols x 1 tick/s for a minute) is out, then it
    # runs on the clock.
    rest = source.due(now_ns + S)
    behind = [*first, *second, *rest]
    assert 2500 < len([t for t in behind if t.ts_ns <= now_ns]) < 3700
    assert rest[-1].ts_ns <= now_ns + S
    later = source.due(now_ns + 3 * S)
    assert later and all(now_ns + S < t.ts_ns <= now_ns + 3 * S for t in later)


def test_the_simulated_past_is_the_ingests_bars_and_the_feed_goes_on_after_it() -> None:
    end_ns = 1000 * S
    simulator = Simulator(
        default_universe(), seed=5, rate_per_symbol=4.0, start_ns=end_ns - 600 * S
    )
    past = simulate_past(simulator, end_ns)
    rows = [row for chunk in past.row_chunks(1000) for row in chunk]
    assert len(rows) == past.ticks
    times = [row[1] for row in rows]
    assert times == sorted(times) and end_ns - 600 * S < times[0] and times[-1] < end_ns
    sequences = [row[0] for row in rows]
    assert sequences == list(range(times[0], times[0] + len(times)))  # below a live feed's
    # The same bars, closed or open, and clocks as the ingest's builder makes tick by tick.
    builder = BarBuilder()
    closed: list[Bar] = []
    for row in rows:
        if row[3] == store.KIND_TRADE:
            closed += builder.on_trade(row[2], row[1], row[8], row[9])
        else:
            closed += builder.advance(row[2], row[1])
    key = operator.attrgetter("symbol", "timeframe", "start_ns")
    made = sorted(zip(past.bars, past.closed, strict=True), key=lambda pair: key(pair[0]))
    expected = sorted(
        [(bar, True) for bar in closed] + [(bar, False) for bar in builder.open_bars()],
        key=lambda pair: key(pair[0]),
    )
    assert [(key(b), c) for b, c in made] == [(key(b), c) for b, c in expected]
    assert [bar for bar, _ in made] == [bar for bar, _ in expected]
    assert past.clocks == builder.clocks()
    # The events made past the end are the feed's first; the simulator goes on after them.
    assert past.after and all(t.ts_ns >= end_ns for t in past.after)
    source = SimulatorSource(simulator, past.after)
    due = [t for k in (1, 2, 3) for t in source.due(end_ns + k * 20 * S)]  # at the catch-up pace
    assert due[: len(past.after)] == past.after
    assert [t.ts_ns for t in due] == sorted(t.ts_ns for t in due)
    assert due[-1].ts_ns > past.after[-1].ts_ns


def test_onto_stored_ticks_the_simulator_starts_from_their_prices() -> None:
    config = MarketDataConfig(marketdata_rate=1.0)
    source = SimulatorSource(
        new_simulator(config, default_universe(), time.time_ns(), {"AAPL": 300.0})
    )
    ticks = source.due(time.time_ns() + 120 * S)
    aapl = next(t for t in ticks if t.symbol == "AAPL" and isinstance(t, Quote))
    assert 297.0 < aapl.bid < aapl.ask < 303.0


async def test_the_simulator_starts_now_and_refuses_a_negative_history() -> None:
    source = tick_source(MarketDataConfig(), default_universe())
    assert source is not None and source.due(time.time_ns()) == []
    config = MarketDataConfig(marketdata_simulator_history_s=-1.0)
    ctx = cast(Any, SimpleNamespace(config=config))  # refused before the store is read
    with pytest.raises(InvalidArgument, match="must not be negative"):
        await prepared_simulator(ctx, default_universe())


def replay_ticks() -> list[Tick]:
    return [
        Quote("AAPL", 10 * S, 99.0, 99.1, 100, 100),
        Trade("AAPL", 10 * S, 99.05, 5),
        Trade("AAPL", 70 * S, 99.5, 5),
    ]


def test_replay_source_compresses_history_by_its_speed_and_retimes_ticks() -> None:
    source = ReplaySource(replay_ticks(), speed=60.0, start_ns=1000 * S, loop=False)
    now = source.due(1000 * S)
    assert [t.ts_ns for t in now] == [1000 * S, 1000 * S + 1]  # distinct, increasing times
    assert source.due(1000 * S + S // 2) == []
    (last,) = source.due(1001 * S)  # 60 s of history a second later
    assert last.ts_ns == 1001 * S and isinstance(last, Trade) and last.price == 99.5
    assert source.finished


def test_replay_at_speed_zero_publishes_everything_at_once_with_original_times() -> None:
    source = ReplaySource(replay_ticks(), speed=0.0, start_ns=1000 * S, loop=False)
    assert [t.ts_ns for t in source.due(0)] == [10 * S, 10 * S, 70 * S]
    assert source.finished


def test_a_looping_replay_starts_over_after_its_last_tick() -> None:
    source = ReplaySource(replay_ticks(), speed=60.0, start_ns=1000 * S, loop=True)
    assert len(source.due(1001 * S)) == 3
    again = source.due(1002 * S + 1)  # the second pass spans the next second
    assert len(again) == 3 and again[0].ts_ns > 1001 * S
    assert not source.finished


def test_stamped_ticks_get_consecutive_sequences_and_quotes_carry_the_last_trade() -> None:
    published: list[list[marketdata_pb2.Quote | marketdata_pb2.Trade]] = []
    source = ReplaySource(
        [*replay_ticks(), Quote("AAPL", 80 * S, 99.4, 99.6, 100, 200)],
        speed=0.0,
        start_ns=0,
        loop=False,
    )
    runner = FeedRunner(source, None, published.append, interval_s=0.01, sequence_base=5000)
    assert asyncio.run(runner.publish_once(0)) == 4
    (batch,) = published
    assert [m.sequence for m in batch] == [5001, 5002, 5003, 5004]
    first_quote, last_quote = batch[0], batch[3]
    assert isinstance(first_quote, marketdata_pb2.Quote) and first_quote.last == 0.0
    assert isinstance(last_quote, marketdata_pb2.Quote) and last_quote.last == 99.5
    assert last_quote.timestamp.ToNanoseconds() == 80 * S
    assert runner.next_sequence == 5005


def test_a_restarted_feed_continues_above_the_previous_sequences() -> None:
    earlier = FeedRunner(simulator_source(), None, lambda _: None, interval_s=0.01)
    later = FeedRunner(simulator_source(), None, lambda _: None, interval_s=0.01)
    assert later.next_sequence > earlier.next_sequence


def test_framed_ticks_are_byte_identical_tick_events() -> None:
    # publish_ticks frames the serialized quote/trade itself instead of building a
    # TickEvent; the bytes must be exactly what protobuf would produce, and decode back.
    quote = marketdata_pb2.Quote(symbol="AAPL", bid=189.12, ask=189.14, bid_size=300, sequence=7)
    quote.timestamp.seconds = 1_700_000_000
    long_trade = marketdata_pb2.Trade(symbol="X" * 300, price=1.5, size=2, sequence=2**62)
    empty_quote = marketdata_pb2.Quote()
    cases: list[tuple[marketdata_pb2.Quote | marketdata_pb2.Trade, events_pb2.TickEvent]] = [
        (quote, events_pb2.TickEvent(quote=quote)),
        (long_trade, events_pb2.TickEvent(trade=long_trade)),  # a two-byte length
        (empty_quote, events_pb2.TickEvent(quote=empty_quote)),
    ]
    for tick, event in cases:
        framed = tick_event_bytes(tick)
        assert framed == event.SerializeToString()
        assert events_pb2.TickEvent.FromString(framed) == event
