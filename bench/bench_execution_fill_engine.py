"""Fill-engine throughput: ticks per second with 10,000 resting orders.

Run: python bench/bench_execution_fill_engine.py [--ticks 200000] [--orders 10000]

The book holds limits on both sides, stops and trailing stops spread over 20
symbols, around a random-walk market; quotes and trades are pre-built Decimals
(decoding ticks from Kafka is the edge's cost, measured separately by its own
bench). Fills happen along the way as the walk crosses resting orders; their
count is printed so a book that never fills cannot pass for a fast one.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from decimal import Decimal

from cift.trading.fills import Fill, FillEngine, Quote, Trade
from cift.trading.orders import OrderRequest, OrderStatus, new_order
from cift.trading.vocabulary import Instrument, OrderType, Side, TimeInForce

SYMBOLS = [f"S{i:02d}" for i in range(20)]
CENT = Decimal("0.01")


def build_engine(order_count: int, rng: random.Random) -> FillEngine:
    engine = FillEngine()
    for symbol in SYMBOLS:
        engine.set_instrument(Instrument(symbol, CENT, Decimal(1), fractionable=False))
        engine.on_quote(
            Quote(symbol, Decimal("99.99"), Decimal("100.01"), Decimal(100), Decimal(100), 0)
        )
        engine.on_trade(Trade(symbol, Decimal("100.00"), Decimal(100), 0))
    for n in range(order_count):
        symbol = SYMBOLS[n % len(SYMBOLS)]
        offset = Decimal(rng.randint(50, 1500)) * CENT
        kind = n % 10
        side = Side.BUY if n % 2 == 0 else Side.SELL
        fields: dict[str, Decimal] = {}
        if kind < 8:
            order_type = OrderType.LIMIT
            fields["limit_price"] = 100 - offset if side is Side.BUY else 100 + offset
        elif kind == 8:
            order_type = OrderType.STOP
            fields["stop_price"] = 100 + offset if side is Side.BUY else 100 - offset
        else:
            order_type = OrderType.TRAILING_STOP
            fields["trail_price"] = offset
        request = OrderRequest(symbol, side, order_type, TimeInForce.GTC, qty=Decimal(10), **fields)  # type: ignore[arg-type]
        order = new_order(
            request,
            Instrument(symbol, CENT, Decimal(1), fractionable=False),
            order_id=f"o{n}",
            account_id="bench",
            now_ns=0,
        )
        order.transition(OrderStatus.ACCEPTED, 0)
        engine.add(order, 0)
    return engine


def build_ticks(count: int, rng: random.Random) -> list[Quote | Trade]:
    mids = {symbol: 10000 for symbol in SYMBOLS}  # cents
    ticks: list[Quote | Trade] = []
    for n in range(count):
        symbol = SYMBOLS[rng.randrange(len(SYMBOLS))]
        mids[symbol] = max(200, mids[symbol] + rng.choice((-2, -1, 0, 1, 2)))
        mid = Decimal(mids[symbol]) * CENT
        if n % 5 == 4:
            ticks.append(Trade(symbol, mid, Decimal(100), n))
        else:
            ticks.append(Quote(symbol, mid - CENT, mid + CENT, Decimal(300), Decimal(300), n))
    return ticks


def run(ticks: list[Quote | Trade], engine: FillEngine) -> tuple[float, list[int], int]:
    on_quote, on_trade = engine.on_quote, engine.on_trade
    fills = 0
    latencies: list[int] = []
    clock = time.perf_counter_ns
    started = time.perf_counter()
    for tick in ticks:
        t0 = clock()
        events = on_quote(tick) if isinstance(tick, Quote) else on_trade(tick)
        latencies.append(clock() - t0)
        if events:
            fills += sum(1 for e in events if isinstance(e, Fill))
    return time.perf_counter() - started, latencies, fills


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ticks", type=int, default=200_000)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    engine = build_engine(args.orders, rng)
    resting_before = len(engine)
    ticks = build_ticks(args.ticks, rng)
    elapsed, latencies, fills = run(ticks, engine)
    latencies.sort()
    p50 = latencies[len(latencies) // 2] / 1000
    p99 = latencies[int(len(latencies) * 0.99)] / 1000
    print(
        f"command: python bench/bench_execution_fill_engine.py --ticks {args.ticks} --orders {args.orders}"
    )
    print(f"{'resting orders':<22}{resting_before:>12,}")
    print(f"{'ticks':<22}{len(ticks):>12,}")
    print(f"{'fills':<22}{fills:>12,}")
    print(f"{'resting after':<22}{len(engine):>12,}")
    print(f"{'ticks/s':<22}{len(ticks) / elapsed:>12,.0f}")
    print(f"{'p50 per tick (us)':<22}{p50:>12.2f}")
    print(f"{'p99 per tick (us)':<22}{p99:>12.2f}")
    print(f"{'mean per tick (us)':<22}{statistics.fmean(latencies) / 1000:>12.2f}")


if __name__ == "__main__":
    main()
