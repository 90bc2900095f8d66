"""Massive's (Polygon's) documented stream and REST examples mapped field by field, exactly."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from services.marketdata.events import quote_pb, trade_pb
from services.marketdata.providers.massive import MassiveHistory, MassiveStream
from services.marketdata.providers.protocol import Control, PageRequest, Problem
from services.marketdata.ticks import Quote, Trade

# The documentation's own examples (stocks cluster).
QUOTE = (
    '{"ev":"Q","sym":"MSFT","bx":4,"bp":114.125,"bs":100,"ax":7,"ap":114.128,"as":160,'
    '"c":0,"i":[604],"t":1536036818784,"q":50385480,"z":3}'
)
TRADE = (
    '{"ev":"T","sym":"MSFT","x":4,"i":"12345","z":3,"p":114.125,"s":100,"c":[0,12],'
    '"t":1536036818784,"q":3681328}'
)
MINUTE = (
    '{"ev":"AM","sym":"GTE","v":4110,"av":9470157,"op":0.4372,"vw":0.4488,"o":0.4488,'
    '"c":0.4486,"h":0.4489,"l":0.4486,"a":0.4352,"z":685,"s":1610144640000,"e":1610144700000}'
)


def stream() -> MassiveStream:
    return MassiveStream("API-KEY", "wss://socket.massive.com/stocks")


def exact(value: float) -> Decimal:
    return Decimal(repr(value))


def test_documented_quote_maps_every_field_exactly_into_the_kafka_quote() -> None:
    (quote,) = stream().decode(f"[{QUOTE}]").ticks
    assert isinstance(quote, Quote)
    message = quote_pb(quote, 3, 0.0)
    assert message.symbol == "MSFT"
    assert (exact(message.bid), exact(message.ask)) == (Decimal("114.125"), Decimal("114.128"))
    assert (message.bid_size, message.ask_size) == (100, 160)
    assert (message.bid_exchange, message.ask_exchange) == ("4", "7")
    assert list(message.conditions) == ["0"]
    assert message.tape == "C"  # z = 3
    assert (message.timestamp.seconds, message.timestamp.nanos) == (1536036818, 784_000_000)


def test_documented_trade_maps_every_field_exactly_into_the_kafka_trade() -> None:
    (trade,) = stream().decode(f"[{TRADE}]").ticks
    assert isinstance(trade, Trade)
    message = trade_pb(trade, 4)
    assert (exact(message.price), message.size) == (Decimal("114.125"), 100)
    assert (message.exchange, message.tape, message.trade_id) == ("4", "C", "12345")
    assert list(message.conditions) == ["0", "12"]
    assert (message.timestamp.seconds, message.timestamp.nanos) == (1536036818, 784_000_000)


def test_documented_minute_aggregate_maps_ohlcv() -> None:
    (bar,) = stream().decode(f"[{MINUTE}]").bars
    assert (bar.symbol, bar.timeframe, bar.start_ns) == ("GTE", "1Min", 1610144640000 * 10**6)
    assert [exact(v) for v in (bar.open, bar.high, bar.low, bar.close)] == [
        Decimal("0.4488"),
        Decimal("0.4489"),
        Decimal("0.4486"),
        Decimal("0.4486"),
    ]
    assert bar.volume == 4110 and bar.vwap == pytest.approx(0.4488, rel=1e-15)


@pytest.mark.parametrize(
    ("status", "control", "problem"),
    [
        ("connected", Control.CONNECTED, None),
        ("auth_success", Control.AUTHENTICATED, None),
        ("success", Control.SUBSCRIBED, None),
        ("auth_failed", Control.ERROR, Problem.AUTH_FAILED),
        ("max_connections", Control.ERROR, Problem.CONNECTION_LIMIT),
    ],
)
def test_status_events(status: str, control: Control, problem: Problem | None) -> None:
    frame = json.dumps([{"ev": "status", "status": status, "message": "x"}])
    (message,) = stream().decode(frame).controls
    assert (message.kind, message.problem) == (control, problem)


def test_milliseconds_must_be_integers() -> None:
    decoded = stream().decode(f"[{QUOTE.replace('1536036818784', '1536036818784.5')}]")
    assert decoded.ticks == [] and len(decoded.malformed) == 1


def test_auth_and_subscribe_messages_follow_the_documentation() -> None:
    assert json.loads(stream().auth_message()) == {"action": "auth", "params": "API-KEY"}
    assert json.loads(stream().subscribe_message(["AAPL", "MSFT"])) == {
        "action": "subscribe",
        "params": "T.AAPL,T.MSFT,Q.AAPL,Q.MSFT",
    }
    assert "API-KEY" not in repr(stream())


def test_rest_aggregates_and_trades_follow_next_url() -> None:
    history = MassiveHistory("API-KEY", "https://api.massive.com")
    start, end = 1_704_153_600 * 10**9, 1_704_240_000 * 10**9
    request = history.bars_request("AAPL", "5Min", start, end)
    assert request.url == (
        "https://api.massive.com/v2/aggs/ticker/AAPL/range/5/minute/1704153600000/1704239999999"
    )
    body = {
        "ticker": "AAPL",
        "results": [
            {
                "v": 7,
                "vw": 186.1,
                "o": 186,
                "c": 186.2,
                "h": 186.3,
                "l": 185.9,
                "t": 1704204000000,
                "n": 3,
            }
        ],
        "status": "OK",
        "next_url": "https://api.massive.com/v2/aggs/ticker/AAPL/range/5/minute/1/2?cursor=abc",
    }
    page = history.parse_bars(request, "AAPL", "5Min", body)
    (bar,) = page.bars
    assert (bar.timeframe, bar.start_ns, bar.trade_count) == ("5Min", 1704204000000 * 10**6, 3)
    assert page.next == PageRequest(body["next_url"])  # type: ignore[arg-type]
    trades = {
        "results": [
            {
                "conditions": [12, 41],
                "exchange": 11,
                "id": "1",
                "participant_timestamp": 1517562000015577088,
                "price": 171.55,
                "sequence_number": 1063,
                "sip_timestamp": 1517562000016036581,
                "size": 100,
                "tape": 3,
            }
        ],
        "status": "OK",
    }
    last = history.parse_trades(history.trades_request("AAPL", start, end), "AAPL", trades)
    (trade,) = last.trades
    assert last.next is None
    assert (trade.ts_ns, trade.exchange, trade.tape, trade.conditions) == (
        1517562000016036581,
        "11",
        "C",
        ("12", "41"),
    )
    assert history.headers() == {"Authorization": "Bearer API-KEY"}
