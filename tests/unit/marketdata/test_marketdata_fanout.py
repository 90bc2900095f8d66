"""Fan-out: bounded per-subscriber backlog, conflation, drop counting, batching and resume."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cift.runtime.errors import InvalidArgument, ResourceExhausted
from services.marketdata.fanout import StreamLog, split_batches
from services.marketdata.ticks import Quote, Trade


def quote(symbol: str, n: int) -> Quote:
    return Quote(symbol, n, 100.0 + n, 100.01 + n, 100, 100)


def trade(symbol: str, n: int) -> Trade:
    return Trade(symbol, n, 100.0, float(n))


def quotes_log(capacity: int = 100) -> StreamLog[Quote]:
    return StreamLog(capacity=capacity, key=lambda q: q.symbol, conflate=True)


def trades_log(capacity: int = 100) -> StreamLog[Trade]:
    return StreamLog(capacity=capacity, key=lambda t: t.symbol, conflate=False)


def ticked_trades_log(capacity: int = 100) -> StreamLog[Trade]:
    # Items carry their own (tick log) sequence, here their timestamp.
    return StreamLog(
        capacity=capacity, key=lambda t: t.symbol, conflate=False, sequence=lambda t: t.ts_ns
    )


def test_trades_arrive_in_order_in_batches_filtered_by_symbol() -> None:
    log = trades_log()
    sub = log.subscribe(symbols=["AAPL"])
    log.publish([trade("AAPL", 1), trade("MSFT", 2), trade("AAPL", 3), trade("AAPL", 4)])
    first = sub.take(2)
    assert first is not None and [t.ts_ns for t in first.items] == [1, 3]
    assert first.seqs == [1, 3] and first.dropped == 0
    second = sub.take(2)
    assert second is not None and [t.ts_ns for t in second.items] == [4]
    assert sub.take(2) is None


def test_a_stalled_trade_subscriber_loses_the_oldest_and_is_told_how_many() -> None:
    log = trades_log(capacity=10)
    stalled = log.subscribe()
    live = log.subscribe()
    for n in range(1, 26):
        log.publish([trade("AAPL", n)])
        delivery = live.take(100)
        assert delivery is not None and delivery.items[0].ts_ns == n
    delivery = stalled.take(100)
    assert delivery is not None
    assert delivery.dropped == 15 and stalled.dropped == 15
    assert [t.ts_ns for t in delivery.items] == list(range(16, 26))


def test_publishing_does_not_depend_on_how_far_behind_a_subscriber_is() -> None:
    log = trades_log(capacity=4)
    log.subscribe()  # never reads
    for n in range(1, 1001):
        assert log.publish([trade("AAPL", n)]) == n


def test_a_slow_quote_subscriber_gets_only_the_latest_quote_per_symbol_in_sequence_order() -> None:
    log = quotes_log()
    sub = log.subscribe()
    log.publish(
        [quote("AAPL", 1), quote("MSFT", 2), quote("AAPL", 3), quote("SPY", 4), quote("MSFT", 5)]
    )
    delivery = sub.take(100)
    assert delivery is not None
    assert [(q.symbol, q.ts_ns) for q in delivery.items] == [("AAPL", 3), ("SPY", 4), ("MSFT", 5)]
    assert delivery.conflated == 2


def test_conflated_batches_never_deliver_a_stale_quote_after_a_fresh_one() -> None:
    log = quotes_log()
    sub = log.subscribe()
    log.publish([quote("A", 1), quote("B", 2), quote("C", 3), quote("A", 4)])
    first = sub.take(2)
    assert first is not None and [(q.symbol, q.ts_ns) for q in first.items] == [("B", 2), ("C", 3)]
    log.publish([quote("B", 5)])
    second = sub.take(2)
    assert second is not None and [(q.symbol, q.ts_ns) for q in second.items] == [
        ("A", 4),
        ("B", 5),
    ]


def test_a_quote_subscriber_behind_the_ring_catches_up_from_the_latest_snapshot() -> None:
    log = quotes_log(capacity=5)
    sub = log.subscribe(symbols=["AAPL", "MSFT"])
    log.publish([quote("AAPL", 1)])
    log.publish([quote("SPY", n) for n in range(2, 12)])
    log.publish([quote("MSFT", 12)])
    first = sub.take(100)
    assert first is not None and [(q.symbol, q.ts_ns) for q in first.items] == [("AAPL", 1)]
    second = sub.take(100)
    assert second is not None and [(q.symbol, q.ts_ns) for q in second.items] == [("MSFT", 12)]


def test_resume_after_a_sequence_delivers_what_followed_it() -> None:
    log = ticked_trades_log()
    first = log.subscribe()
    log.publish([trade("AAPL", n) for n in (10, 20, 30, 40, 50)])
    seen = first.take(2)
    assert seen is not None and seen.seqs == [10, 20] and seen.position == 20
    first.close()
    again = log.subscribe(resume_after=seen.position)
    rest = again.take(100)
    assert rest is not None and [t.ts_ns for t in rest.items] == [30, 40, 50] and not rest.gap
    # A sequence between two items resumes after the earlier one.
    between = log.subscribe(resume_after=35)
    tail = between.take(100)
    assert tail is not None and [t.ts_ns for t in tail.items] == [40, 50]


def test_position_advances_past_items_the_filter_skipped() -> None:
    log = ticked_trades_log()
    sub = log.subscribe(symbols=["AAPL"])
    log.publish([trade("AAPL", 1), trade("MSFT", 2)])
    delivery = sub.take(10)
    assert delivery is not None and delivery.seqs == [1] and delivery.position == 2


def test_resume_from_before_the_ring_reports_a_gap_and_replays_what_is_left() -> None:
    log = ticked_trades_log(capacity=3)
    log.publish([trade("AAPL", n) for n in range(1, 11)])
    sub = log.subscribe(resume_after=2)
    first = sub.take(10)
    assert first is not None and first.gap and [t.ts_ns for t in first.items] == [8, 9, 10]
    log.publish([trade("AAPL", 11)])
    nxt = sub.take(10)
    assert nxt is not None and [t.ts_ns for t in nxt.items] == [11] and not nxt.gap


def test_resume_after_the_newest_item_starts_live() -> None:
    log = ticked_trades_log()
    log.publish([trade("AAPL", 5)])
    sub = log.subscribe(resume_after=5)
    assert sub.take(10) is None


def test_bad_resume_and_too_many_subscribers_are_refused() -> None:
    log = StreamLog[Trade](capacity=10, key=lambda t: t.symbol, conflate=False, max_subscribers=1)
    with pytest.raises(InvalidArgument, match="negative"):
        log.subscribe(resume_after=-1)
    sub = log.subscribe()
    with pytest.raises(ResourceExhausted):
        log.subscribe()
    sub.close()
    log.subscribe()
    with pytest.raises(InvalidArgument):
        StreamLog[Trade](capacity=0, key=lambda t: t.symbol, conflate=False)
    with pytest.raises(InvalidArgument, match="at least one"):
        sub.take(0)


def test_subscribers_are_woken_when_items_are_published() -> None:
    log = trades_log()
    woken: list[str] = []
    log.subscribe(on_ready=lambda: woken.append("a"))
    log.publish([])
    assert woken == []
    log.publish([trade("AAPL", 1), trade("AAPL", 2)])
    assert woken == ["a"]


def test_predicate_filters_items_such_as_bar_timeframes() -> None:
    log = trades_log()
    sub = log.subscribe(predicate=lambda t: t.size > 1)
    log.publish([trade("AAPL", 1), trade("AAPL", 2)])
    delivery = sub.take(10)
    assert delivery is not None and [t.ts_ns for t in delivery.items] == [2]


def test_split_batches_cuts_into_messages_of_bounded_size() -> None:
    assert split_batches([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    with pytest.raises(InvalidArgument):
        split_batches([1], 0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("ABC"), st.booleans()), max_size=60),
    st.integers(1, 8),
    st.integers(1, 20),
)
def test_conflated_stream_ends_on_the_latest_quote_of_every_symbol_in_order(
    script: list[tuple[str, bool]], batch: int, capacity: int
) -> None:
    log = quotes_log(capacity=capacity)
    sub = log.subscribe()
    received: list[Quote] = []
    for n, (symbol, read) in enumerate(script, start=1):
        log.publish([quote(symbol, n)])
        if read:
            delivery = sub.take(batch)
            received += delivery.items if delivery else []
    while (delivery := sub.take(batch)) is not None:
        received += delivery.items
    latest: dict[str, int] = {}
    for n, (symbol, _) in enumerate(script, start=1):
        latest[symbol] = n
    final: dict[str, int] = {}
    for q in received:
        assert q.ts_ns > final.get(q.symbol, 0)  # never older than what came before
        final[q.symbol] = q.ts_ns
    assert final == latest
    stamps = [q.ts_ns for q in received]
    assert stamps == sorted(stamps)
