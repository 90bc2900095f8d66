"""Kafka in and out, and the protobuf encoding of market data values.

Ticks leave on `marketdata.ticks.v1` keyed by symbol (so one symbol's ticks stay in
one partition, in order), each with the event id `tick-<sequence>`; closed bars
leave on `marketdata.bars.v1` through the outbox with the event id
`bar-<symbol>-<timeframe>-<start_ns>`, so a consumer deduplicates replays by id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cift.marketdata.v1 import events_pb2, marketdata_pb2
from cift.runtime.kafka import EVENT_ID_HEADER, SCHEMA_HEADER, TOPIC_TICKS, EventProducer
from cift.runtime.money import format_decimal
from cift.runtime.timestamps import NS_PER_S, timestamp
from cift.runtime.tracing import inject_headers
from services.marketdata.bars import Bar
from services.marketdata.instruments import Instrument
from services.marketdata.ticks import Quote, Trade

TICK_SCHEMA = events_pb2.TickEvent.DESCRIPTOR.full_name.encode()
# The venue fields of a simulated quote: none (the constructor leaves them empty).
_NO_VENUE: dict[str, Any] = {}


def quote_pb(quote: Quote, sequence: int, last: float) -> marketdata_pb2.Quote:
    # One constructor call per quote (each further field set or extend is another
    # crossing into upb, and a provider feed makes 100k of these a second). Only
    # provider quotes carry venue fields; the simulator's hot path passes none.
    venue: dict[str, Any] = (
        {
            "bid_exchange": quote.bid_exchange,
            "ask_exchange": quote.ask_exchange,
            "conditions": quote.conditions,
            "tape": quote.tape,
        }
        if quote.tape or quote.bid_exchange or quote.ask_exchange or quote.conditions
        else _NO_VENUE
    )
    message = marketdata_pb2.Quote(
        symbol=quote.symbol,
        bid=quote.bid,
        ask=quote.ask,
        bid_size=quote.bid_size,
        ask_size=quote.ask_size,
        last=last,
        sequence=sequence,
        **venue,
    )
    stamp = message.timestamp
    stamp.seconds, stamp.nanos = divmod(quote.ts_ns, NS_PER_S)
    return message


def trade_pb(trade: Trade, sequence: int) -> marketdata_pb2.Trade:
    if trade.tape or trade.exchange or trade.conditions or trade.trade_id:
        message = marketdata_pb2.Trade(
            symbol=trade.symbol,
            price=trade.price,
            size=trade.size,
            sequence=sequence,
            exchange=trade.exchange,
            conditions=trade.conditions,
            tape=trade.tape,
            trade_id=trade.trade_id,
        )
    else:
        message = marketdata_pb2.Trade(
            symbol=trade.symbol, price=trade.price, size=trade.size, sequence=sequence
        )
    stamp = message.timestamp
    stamp.seconds, stamp.nanos = divmod(trade.ts_ns, NS_PER_S)
    return message


def bar_pb(bar: Bar) -> marketdata_pb2.Bar:
    return marketdata_pb2.Bar(
        symbol=bar.symbol,
        timeframe=bar.timeframe,
        start_time=timestamp(bar.start_ns),
        open=bar.open,
        high=bar.high,
        low=bar.low,
        close=bar.close,
        volume=bar.volume,
        vwap=bar.vwap,
        trade_count=bar.trade_count,
    )


def bar_event_id(bar: Bar) -> str:
    return f"bar-{bar.symbol}-{bar.timeframe}-{bar.start_ns}"


def instrument_pb(instrument: Instrument) -> marketdata_pb2.Instrument:
    return marketdata_pb2.Instrument(
        symbol=instrument.symbol,
        name=instrument.name,
        exchange=instrument.exchange,
        # ETFs trade as US equities (same venues, same order rules).
        asset_class=marketdata_pb2.ASSET_CLASS_US_EQUITY,
        status=marketdata_pb2.INSTRUMENT_STATUS_ACTIVE,
        tick_size=format_decimal(instrument.tick_size),
        lot_size=format_decimal(instrument.lot_size),
        min_order_size=format_decimal(instrument.lot_size),
        fractionable=instrument.fractionable,
        shortable=instrument.shortable,
        tradable=True,
        currency="USD",
    )


TickMessage = marketdata_pb2.Quote | marketdata_pb2.Trade


async def publish_ticks(
    producer: EventProducer, ticks: Sequence[TickMessage], topic: str = TOPIC_TICKS
) -> None:
    """Send ticks to `topic` (`marketdata.ticks.v1`) without waiting for each acknowledgement.

    The trace context is taken once per batch (every tick of a batch shares it);
    the caller flushes the producer to wait for the broker.
    """
    trace: list[tuple[str, bytes]] = []
    inject_headers(trace)
    schema = (SCHEMA_HEADER, TICK_SCHEMA)
    await producer.send(
        topic,
        (
            (
                tick.symbol,
                tick_event_bytes(tick),
                [schema, (EVENT_ID_HEADER, b"tick-%d" % tick.sequence), *trace],
            )
            for tick in ticks
        ),
    )


# A TickEvent holding one quote (field 1) or trade (field 2) is, byte for byte, the
# field's tag, the payload's length and the payload. Framing the serialized tick
# directly skips building a TickEvent, which copies the whole tick into it.
_QUOTE_TAG = bytes([1 << 3 | 2])
_TRADE_TAG = bytes([2 << 3 | 2])
_SHORT_VARINTS = [bytes([n]) for n in range(128)]


def _varint(value: int) -> bytes:
    if value < 128:
        return _SHORT_VARINTS[value]
    out = bytearray()
    while value >= 128:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def tick_event_bytes(tick: TickMessage) -> bytes:
    """The serialized `TickEvent` of one quote or trade (what `publish_ticks` sends)."""
    payload = tick.SerializeToString()
    size = len(payload)
    tag = _TRADE_TAG if type(tick) is marketdata_pb2.Trade else _QUOTE_TAG
    return tag + (_SHORT_VARINTS[size] if size < 128 else _varint(size)) + payload
