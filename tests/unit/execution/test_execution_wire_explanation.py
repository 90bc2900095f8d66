"""A tick's feed sequence reaches the fill engine, and a fill's explanation reaches the wire."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from cift.execution.v1 import orders_pb2
from cift.marketdata.v1 import events_pb2 as md_events
from cift.marketdata.v1 import marketdata_pb2
from cift.trading.fills import Fill, FillExplanation, PriceSource, Quote, Trade
from cift.trading.orders import OrderStatus
from cift.trading.vocabulary import Side
from services.execution.adapters.wire import decode_tick, fill_message

D = Decimal


def test_decoded_ticks_carry_their_feed_sequence() -> None:
    quote = marketdata_pb2.Quote(
        symbol="KO", bid=70.1, ask=70.12, bid_size=300, ask_size=200, sequence=9001
    )
    quote.timestamp.FromNanoseconds(5_000)
    decoded = decode_tick(md_events.TickEvent(quote=quote))
    assert decoded == (Quote("KO", D("70.1"), D("70.12"), D(300), D(200), 5_000, 9001), 9001)
    trade = marketdata_pb2.Trade(symbol="KO", price=70.11, size=40, sequence=9002)
    trade.timestamp.FromNanoseconds(6_000)
    assert decode_tick(md_events.TickEvent(trade=trade)) == (
        Trade("KO", D("70.11"), D(40), 6_000, 9002),
        9002,
    )


def test_a_fill_event_carries_its_explanation_as_decimal_strings() -> None:
    why = FillExplanation(
        source=PriceSource.CLOSING_AUCTION,
        tick_sequence=77,
        tick_ts_ns=3_000_000_001,
        market_price=D("70.11"),
        bid=D("70.10"),
        ask=D("70.12"),
        bid_size=D(300),
        ask_size=D(200),
        trade_price=D("70.11"),
        trade_size=D(40),
        limit_price=D("70.00"),
        slippage_bps=D("2.5"),
        commission_per_share=D("0.005"),
    )
    fill = Fill(
        "o1-1", "o1", "acct", "KO", Side.SELL, D(10), D("70.11"), D("0.05"), 4_000,
        OrderStatus.FILLED, D(10), D("701.10"), 1, why,
    )  # fmt: skip
    message = fill_message(fill).explanation
    assert message.price_source == orders_pb2.FILL_PRICE_SOURCE_CLOSING_AUCTION
    assert (message.tick_sequence, message.tick_timestamp.ToNanoseconds()) == (77, 3_000_000_001)
    assert (message.market_price, message.trade_price, message.trade_size) == (
        "70.11",
        "70.11",
        "40",
    )
    # Decimal strings as every price on the wire: no trailing zeros.
    assert (message.bid, message.ask, message.limit_price) == ("70.1", "70.12", "70")
    assert (message.available_qty, message.displayed_size_only) == ("", False)
    assert (message.slippage_bps, message.commission_per_share, message.commission_bps) == (
        "2.5",
        "0.005",
        "0",
    )
    unexplained = dataclasses.replace(fill, explanation=None)
    assert not fill_message(unexplained).HasField("explanation")
