"""A limit/stop backtest replayed through the whole mesh fills exactly as `engine="event"`.

The event engine runs a strategy that rests a buy limit, a buy stop (one bar gaps
through it), a buy stop-limit and a limit that never fills, and records its tape:
every tick it handed the fill engine, each order as it entered the book, each fill.
The same ticks then go through the market data replay feed (file → `ReplaySource`
→ `FeedRunner` → `marketdata.ticks.v1`) of a stack of its own whose simulator is
off, into the execution service, with the same orders submitted to a paper account
at the same point of the tape. The account's fills (order, side, qty, price, time)
must be the backtest's, one for one.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
import pytest_asyncio

from cift.backtest import split_bars
from cift.backtest.broker import TapeEvent, TapeTick
from cift.backtest.event import Strategy, run_event
from cift.execution.v1 import execution_pb2, orders_pb2
from cift.marketdata.v1 import marketdata_pb2
from cift.stack.launcher import Stack, StackOptions
from cift.trading.fills import Fill
from cift.trading.orders import Order
from cift.trading.vocabulary import OrderType, Side
from services.marketdata.feed import FeedRunner, ReplaySource
from services.marketdata.replay import load_replay_file
from tests.integration.execution.exec_stack import Mesh, Trader, eventually, open_mesh

pytestmark = pytest.mark.integration

SYMBOL = "AAPL"
MINUTE = 60_000_000_000
# (open, high, low, close): orders go in at bar 0's close and enter at bar 1's open.
BARS = [
    (100.0, 100.5, 99.5, 100.0),
    (100.0, 100.5, 99.8, 100.2),
    (100.2, 100.4, 97.5, 98.5),  # falls through the buy limit at 98: filled at 98
    (98.5, 101.6, 98.2, 101.5),
    (103.3, 103.8, 103.1, 103.6),  # opens above the buy stop at 103: filled at the gap, 103.3
    (103.6, 104.6, 103.4, 104.3),  # rises through the stop-limit's 104: filled at 104
    (104.3, 104.8, 102.9, 103.1),
    (103.1, 103.5, 101.2, 101.9),
    (101.9, 102.7, 101.0, 102.4),
]
SIDES = {Side.BUY: orders_pb2.ORDER_SIDE_BUY, Side.SELL: orders_pb2.ORDER_SIDE_SELL}
TYPES = {
    OrderType.LIMIT: orders_pb2.ORDER_TYPE_LIMIT,
    OrderType.STOP: orders_pb2.ORDER_TYPE_STOP,
    OrderType.STOP_LIMIT: orders_pb2.ORDER_TYPE_STOP_LIMIT,
}
FillKey = tuple[str, int, str, Decimal, Decimal]  # (order, time, side, qty, price)


class RestingOrders(Strategy):
    """Rests four orders at the first close and lets the market come to them."""

    def on_bar(self) -> None:
        if self.i == 0:
            self.buy(10, limit=98.0)
            self.buy(5, stop=103.0)
            self.buy(3, stop=104.0, limit=104.5)
            self.buy(7, limit=90.0)  # never reached: keeps every later bar on the tape


def bars_frame(start_ns: int) -> pl.DataFrame:
    opens, highs, lows, closes = zip(*BARS, strict=True)
    return pl.DataFrame(
        {
            "timestamp": pl.Series([start_ns + k * MINUTE for k in range(len(BARS))]).cast(
                pl.Datetime("ns")
            ),
            "open": opens,
            "high": highs,
            "low": lows,
            "close": closes,
            "volume": [1000.0] * len(BARS),
        }
    )


def write_ticks(ticks: list[TapeTick], path: Path) -> Path:
    """The tape's ticks as a replay file: a quote at the price on both sides, then a trade."""
    rows: list[dict[str, object]] = []
    for tick in ticks:
        price = float(tick.price)
        size = 1_000_000.0
        rows.append({"ts_ns": tick.ts_ns, "bid": price, "ask": price, "bid_size": size,
                     "ask_size": size, "price": None, "size": None})  # fmt: skip
        rows.append({"ts_ns": tick.ts_ns, "bid": None, "ask": None, "bid_size": None,
                     "ask_size": None, "price": price, "size": size})  # fmt: skip
    pl.DataFrame(rows, schema_overrides={"price": pl.Float64, "size": pl.Float64}).with_columns(
        pl.lit(SYMBOL).alias("symbol")
    ).write_csv(path)
    return path


def split_tape(tape: list[TapeEvent]) -> tuple[list[TapeTick], list[Order], list[TapeTick]]:
    """Ticks before the orders, the orders (all entered together), the ticks after."""
    first_order = next(k for k, e in enumerate(tape) if isinstance(e, Order))
    orders = [e for e in tape if isinstance(e, Order)]
    last_order = max(k for k, e in enumerate(tape) if isinstance(e, Order))
    between = tape[first_order : last_order + 1]
    assert all(isinstance(e, Order) for e in between), "orders enter the book together here"
    before = [e for e in tape[:first_order] if isinstance(e, TapeTick)]
    after = [e for e in tape[last_order + 1 :] if isinstance(e, TapeTick)]
    return before, orders, after


@pytest_asyncio.fixture(scope="module")
async def quiet_mesh(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Mesh]:
    """A stack of its own with no feed running: the only ticks are the ones replayed here."""
    environ = {**os.environ, "CIFT_MARKETDATA_FEED": "none"}
    home = tmp_path_factory.mktemp("cift-replay-parity")
    launcher = Stack(
        StackOptions(home=home, free_ports=True, durable=False, with_gateway=False), environ
    )
    info = await launcher.start()
    try:
        async with open_mesh(info, "replay-parity-tests", pool_size=2) as mesh:
            yield mesh
    finally:
        await launcher.stop()


async def replay(runner: FeedRunner, path: Path) -> None:
    """Publish a replay file at full speed through the feed's own runner."""
    runner.source = ReplaySource(load_replay_file(path), speed=0.0, start_ns=0, loop=False)
    await runner.run()


async def mesh_fills(mesh: Mesh, trader: Trader, names: dict[str, str]) -> list[FillKey]:
    reply = await mesh.execution.ListActivities(
        execution_pb2.ListActivitiesRequest(
            activity_types=[execution_pb2.ACTIVITY_TYPE_FILL], page_size=500
        ),
        metadata=trader.auth,
    )
    return sorted(
        (
            names[a.order_id],
            a.occurred_at.ToNanoseconds(),
            "buy" if a.side == orders_pb2.ORDER_SIDE_BUY else "sell",
            Decimal(a.qty),
            Decimal(a.price),
        )
        for a in reply.activities
    )


def backtest_fills(tape: list[TapeEvent]) -> list[FillKey]:
    return sorted(
        (e.order_id, e.ts_ns, e.side.value, e.qty, e.price) for e in tape if isinstance(e, Fill)
    )


async def test_replayed_ticks_fill_the_paper_account_as_the_event_engine(
    quiet_mesh: Mesh, tmp_path: Path
) -> None:
    mesh = quiet_mesh
    # Recent times (the replay keeps the file's, and risk prices orders by them), in
    # whole seconds (the account keeps fill times to the microsecond).
    now_s = time.time_ns() // 1_000_000_000
    frame = bars_frame(now_s * 1_000_000_000 - len(BARS) * MINUTE)
    tape: list[TapeEvent] = []
    run_event(split_bars(frame), RestingOrders, {}, 100_000.0, 0.0, None, tape=tape)
    expected = backtest_fills(tape)
    assert [(f[0], f[4]) for f in expected] == [
        ("ASSET:1", Decimal("98.0")),
        ("ASSET:2", Decimal("103.3")),
        ("ASSET:3", Decimal("104.0")),
    ], "the case must fill a limit at its price, a stop at a gap and a stop-limit"

    before, orders, after = split_tape(tape)
    trader = await mesh.trader()
    runner = FeedRunner(ReplaySource([], speed=0.0, start_ns=0, loop=False), mesh.producer,
                        lambda messages: None, interval_s=0.01, sequence_base=1)  # fmt: skip
    await replay(runner, write_ticks(before, tmp_path / "before.csv"))
    opening = float(before[-1].price)

    async def quoted() -> bool:
        reply = await mesh.marketdata.GetLatestQuotes(
            marketdata_pb2.GetLatestQuotesRequest(symbols=[SYMBOL]), metadata=trader.auth
        )
        return SYMBOL in reply.quotes and reply.quotes[SYMBOL].ask == opening

    await eventually(quoted)
    names: dict[str, str] = {}
    for order in orders:
        placed = await mesh.submit(
            trader,
            symbol=SYMBOL,
            side=SIDES[order.side],
            type=TYPES[order.order_type],
            qty=str(order.qty),
            limit_price="" if order.limit_price is None else str(order.limit_price),
            stop_price="" if order.stop_price is None else str(order.stop_price),
            client_order_id=order.order_id,
        )
        assert placed.status == orders_pb2.ORDER_STATUS_ACCEPTED, placed
        names[placed.id] = order.order_id
    await replay(runner, write_ticks(after, tmp_path / "after.csv"))

    async def filled() -> list[FillKey] | None:
        fills = await mesh_fills(mesh, trader, names)
        return fills if len(fills) >= len(expected) else None

    assert await eventually(filled) == expected
    # The limit at 90 was never reached in either.
    resting = await mesh.order(trader, next(i for i, n in names.items() if n == "ASSET:4"))
    assert resting.status == orders_pb2.ORDER_STATUS_ACCEPTED
    assert Decimal(resting.filled_qty or "0") == 0
