"""Fill-engine throughput with bracket legs: 10,000 working orders, half of them exit legs.

Run: python bench/bench_execution_brackets.py [--ticks 200000] [--orders 10000] [--rounds 3]

Two books over the same 20 symbols and the same random-walk ticks, measured in
the same run, alternating (so a machine getting busier mid-run weighs on both):

- simple: the fill-engine bench's book of limits, stops and trailing stops;
- brackets: as many working orders, half of them the take-profit limit and
  stop-loss (a stop) of filled bracket entries, so every exit fill cancels its
  sibling through the leg rules (cift/trading/contingent.py), the other half
  simple orders as above. (Trailing stop-losses cost what trailing stops cost: the
  simple book's symbols hold trailing stops in only a few symbols, so mixing them
  into every symbol here would measure the trailing ladders, not the leg rules.)

The issue's floor is 300,000 ticks/s for the bracket book; the ratio to the
simple book is the cost of the leg rules. Fills and leg cancellations are counted
so a book that never trades cannot pass for a fast one. Each book is built, then
collected and frozen (gc.freeze) before its run, so garbage left by building it is not
what is timed.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_execution_fill_engine import SYMBOLS, build_engine, build_ticks, run
from bench.figures import machine, record
from cift.trading.fills import FillEngine, OrderClosed, Quote, Trade
from cift.trading.order_classes import (
    ClassedRequest,
    StopLoss,
    TakeProfit,
    accept_group,
    new_group,
    plan_group,
)
from cift.trading.orders import OrderClass, OrderRequest
from cift.trading.vocabulary import Instrument, OrderType, Side, TimeInForce

CENT = Decimal("0.01")
D100 = Decimal(100)


def build_bracket_engine(order_count: int, rng: random.Random) -> FillEngine:
    """Half simple orders (as the simple bench), half the working exits of filled brackets."""
    engine = build_engine(order_count // 2, rng)
    for n in range(order_count // 4):
        symbol = SYMBOLS[n % len(SYMBOLS)]
        instrument = Instrument(symbol, CENT, Decimal(1), fractionable=False)
        side = Side.BUY if n % 2 == 0 else Side.SELL
        reach = Decimal(rng.randint(50, 1500)) * CENT
        # A marketable entry: it fills on entering and releases both exits.
        entry = OrderRequest(
            symbol,
            side,
            OrderType.LIMIT,
            TimeInForce.GTC,
            qty=Decimal(10),
            limit_price=D100 + CENT if side is Side.BUY else D100 - CENT,
        )
        up = side is Side.BUY
        take = D100 + reach if up else D100 - reach
        stop = StopLoss(stop_price=D100 - reach if up else D100 + reach)
        plan = plan_group(
            ClassedRequest(entry, OrderClass.BRACKET, TakeProfit(take), stop), instrument
        )
        ids = [f"b{n}-entry", f"b{n}-tp", f"b{n}-sl"]
        parent, legs = new_group(
            plan, instrument, order_ids=ids, leg_client_ids=ids[1:], account_id="bench", now_ns=0
        )
        accept_group(parent, legs, 0)
        engine.add_group(parent, legs, 0)
    # The walk starts where build_engine left the quotes; re-quote in case entries used the size.
    for symbol in SYMBOLS:
        engine.on_quote(Quote(symbol, D100 - CENT, D100 + CENT, D100, D100, 0))
        engine.on_trade(Trade(symbol, D100, D100, 0))
    return engine


def leg_cancels(engine: FillEngine, ticks: list[Quote | Trade]) -> int:
    """Replays `ticks` on `engine` counting sibling cancellations (a check, not timed)."""
    count = 0
    for tick in ticks:
        events = engine.on_quote(tick) if isinstance(tick, Quote) else engine.on_trade(tick)
        count += sum(1 for e in events if isinstance(e, OrderClosed) and "exit" in e.reason)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ticks", type=int, default=200_000)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    ticks = build_ticks(args.ticks, random.Random(args.seed + 1))
    rates: dict[str, list[float]] = {"simple": [], "brackets": []}
    p99s: dict[str, list[float]] = {"simple": [], "brackets": []}
    fills: dict[str, int] = {}
    resting: dict[str, int] = {}
    for _ in range(args.rounds):
        for name in ("simple", "brackets"):
            rng = random.Random(args.seed)
            engine = (
                build_engine(args.orders, rng)
                if name == "simple"
                else build_bracket_engine(args.orders, rng)
            )
            resting[name] = len(engine)
            # The books' objects moved out of the collector's way for both books alike:
            # otherwise the build's garbage decides the figure, not the engine.
            gc.collect()
            gc.freeze()
            elapsed, latencies, filled = run(ticks, engine)
            gc.unfreeze()
            latencies.sort()
            rates[name].append(len(ticks) / elapsed)
            p99s[name].append(latencies[int(len(latencies) * 0.99)] / 1000)
            fills[name] = filled
    cancels = leg_cancels(build_bracket_engine(args.orders, random.Random(args.seed)), ticks)
    simple, brackets = statistics.median(rates["simple"]), statistics.median(rates["brackets"])
    print(
        f"command: python bench/bench_execution_brackets.py --ticks {args.ticks} "
        f"--orders {args.orders} --rounds {args.rounds}"
    )
    print(f"{'book':<10}{'working':>10}{'fills':>10}{'ticks/s':>12}{'p99 us':>10}")
    for name in ("simple", "brackets"):
        print(
            f"{name:<10}{resting[name]:>10,}{fills[name]:>10,}"
            f"{statistics.median(rates[name]):>12,.0f}{statistics.median(p99s[name]):>10.2f}"
        )
    print(f"exit fills that canceled their sibling: {cancels:,}")
    print(
        f"brackets / simple: {brackets / simple:.2f} (floor 300,000 ticks/s: "
        f"{'met' if brackets >= 300_000 else 'NOT met'})"
    )
    print(f"# machine: {machine()}")
    record(
        "bench_execution_brackets",
        {
            "ticks": args.ticks,
            "orders": args.orders,
            "simple_ticks_per_s": simple,
            "brackets_ticks_per_s": brackets,
            "ratio": brackets / simple,
            "sibling_cancels": cancels,
        },
    )


if __name__ == "__main__":
    main()
