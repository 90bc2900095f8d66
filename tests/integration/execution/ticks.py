"""Quote and trade ticks as the fill engine's Kafka consumer hands them over, for execution tests."""

from __future__ import annotations

import itertools
from decimal import Decimal

from cift.marketdata.v1 import events_pb2 as md_events
from cift.marketdata.v1 import marketdata_pb2
from cift.runtime.kafka import TOPIC_TICKS, Event

_sequence = itertools.count(1)


def quote_message(
    symbol: str, bid: str | Decimal, ask: str | Decimal, sequence: int
) -> marketdata_pb2.Quote:
    """A quote of 1,000 shares a side (`bid`/`ask` as strings or Decimals)."""
    return marketdata_pb2.Quote(
        symbol=symbol,
        bid=float(str(bid)),
        ask=float(str(ask)),
        bid_size=1000,
        ask_size=1000,
        sequence=sequence,
    )


def quote_event(symbol: str, bid: str, ask: str, sequence: int | None = None) -> Event:
    """A quote tick with a fresh feed sequence unless `sequence` is given (replays)."""
    seq = sequence if sequence is not None else next(_sequence)
    message = md_events.TickEvent(quote=quote_message(symbol, bid, ask, seq))
    return Event(TOPIC_TICKS, 0, seq, symbol, f"tick-{symbol}-{seq}", message)


def trade_event(symbol: str, price: str) -> Event:
    """A trade print of 100 shares, sequenced after every tick built so far."""
    seq = next(_sequence)
    message = md_events.TickEvent(
        trade=marketdata_pb2.Trade(symbol=symbol, price=float(price), size=100, sequence=seq)
    )
    return Event(TOPIC_TICKS, 0, seq, symbol, f"tick-{symbol}-{seq}", message)
