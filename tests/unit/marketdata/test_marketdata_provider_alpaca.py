"""Alpaca's documented stream and REST examples mapped field by field, exactly."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cift.marketdata.v1 import marketdata_pb2 as md
from cift.runtime.errors import InvalidArgument
from services.marketdata.events import quote_pb, trade_pb
from services.marketdata.providers.alpaca import AlpacaHistory, AlpacaStream
from services.marketdata.providers.protocol import Control, PageRequest, Problem
from services.marketdata.ticks import Quote, Trade

# The documentation's own examples (stock stream v2).
QUOTE = (
    '{"T":"q","S":"AMD","bx":"U","bp":87.66,"bs":1,"ax":"Q","ap":87.68,"as":4,'
    '"t":"2021-02-22T15:51:45.335689322Z","c":["R"],"z":"C"}'
)
TRADE = (
    '{"T":"t","i":96921,"S":"AAPL","x":"D","p":126.55,"s":1,'
    '"t":"2021-02-22T15:51:44.208Z","c":["@","I"],"z":"C"}'
)
BAR = (
    '{"T":"b","S":"SPY","o":388.985,"h":389.13,"l":388.975,"c":389.12,"v":49378,'
    '"t":"2021-02-22T19:15:00Z","n":461,"vw":389.062639}'
)
SECOND = int(dt.datetime(2021, 2, 22, 15, 51, 45, tzinfo=dt.UTC).timestamp())


def stream() -> AlpacaStream:
    return AlpacaStream("KEY-ID", "SECRET", "wss://stream.data.alpaca.markets/v2/{feed}", "iex")


def exact(value: float) -> Decimal:
    return Decimal(repr(value))


def test_documented_quote_maps_every_field_exactly_into_the_kafka_quote() -> None:
    decoded = stream().decode(f"[{QUOTE}]")
    assert decoded.malformed == [] and decoded.controls == []
    (quote,) = decoded.ticks
    assert isinstance(quote, Quote)
    message = quote_pb(quote, sequence=7, last=0.0)
    assert message.symbol == "AMD"
    assert (exact(message.bid), exact(message.ask)) == (Decimal("87.66"), Decimal("87.68"))
    assert (message.bid_size, message.ask_size) == (1, 4)
    assert (message.bid_exchange, message.ask_exchange) == ("U", "Q")
    assert list(message.conditions) == ["R"]
    assert message.tape == "C"
    # Nanoseconds kept: 15:51:45.335689322 exactly.
    assert (message.timestamp.seconds, message.timestamp.nanos) == (SECOND, 335_689_322)
    assert message.sequence == 7


def test_documented_trade_maps_every_field_exactly_into_the_kafka_trade() -> None:
    (trade,) = stream().decode(f"[{TRADE}]").ticks
    assert isinstance(trade, Trade)
    message = trade_pb(trade, sequence=8)
    assert (message.symbol, exact(message.price), message.size) == ("AAPL", Decimal("126.55"), 1)
    assert (message.exchange, message.tape, message.trade_id) == ("D", "C", "96921")
    assert list(message.conditions) == ["@", "I"]
    assert (message.timestamp.seconds, message.timestamp.nanos) == (SECOND - 1, 208_000_000)


def test_documented_minute_bar_maps_ohlcv_count_and_vwap() -> None:
    (bar,) = stream().decode(f"[{BAR}]").bars
    assert (bar.symbol, bar.timeframe) == ("SPY", "1Min")
    assert bar.start_ns == int(dt.datetime(2021, 2, 22, 19, 15, tzinfo=dt.UTC).timestamp()) * 10**9
    assert [exact(v) for v in (bar.open, bar.high, bar.low, bar.close)] == [
        Decimal("388.985"),
        Decimal("389.13"),
        Decimal("388.975"),
        Decimal("389.12"),
    ]
    assert (bar.volume, bar.trade_count) == (49378, 461)
    assert bar.vwap == pytest.approx(389.062639, rel=1e-15)


def test_a_batch_keeps_the_providers_order() -> None:
    decoded = stream().decode(f"[{TRADE},{QUOTE},{TRADE}]")
    assert [type(t).__name__ for t in decoded.ticks] == ["Trade", "Quote", "Trade"]


@pytest.mark.parametrize(
    ("frame", "control", "problem"),
    [
        ('[{"T":"success","msg":"connected"}]', Control.CONNECTED, None),
        ('[{"T":"success","msg":"authenticated"}]', Control.AUTHENTICATED, None),
        (
            '[{"T":"subscription","trades":["AAPL"],"quotes":["AAPL"],"bars":[]}]',
            Control.SUBSCRIBED,
            None,
        ),
        ('[{"T":"error","code":402,"msg":"auth failed"}]', Control.ERROR, Problem.AUTH_FAILED),
        (
            '[{"T":"error","code":405,"msg":"symbol limit exceeded"}]',
            Control.ERROR,
            Problem.SYMBOL_LIMIT,
        ),
        (
            '[{"T":"error","code":406,"msg":"connection limit exceeded"}]',
            Control.ERROR,
            Problem.CONNECTION_LIMIT,
        ),
        (
            '[{"T":"error","code":409,"msg":"insufficient subscription"}]',
            Control.ERROR,
            Problem.AUTH_FAILED,
        ),
        ('[{"T":"error","code":407,"msg":"slow client"}]', Control.ERROR, Problem.TRANSIENT),
    ],
)
def test_control_messages_and_error_codes(
    frame: str, control: Control, problem: Problem | None
) -> None:
    (message,) = stream().decode(frame).controls
    assert (message.kind, message.problem) == (control, problem)


def test_a_malformed_item_is_skipped_and_the_rest_of_the_frame_kept() -> None:
    broken = (
        '{"T":"q","S":"AMD","bp":"not a price","ap":1,"bs":1,"as":1,"t":"2021-02-22T15:51:45Z"}'
    )
    no_time = '{"T":"t","S":"AAPL","p":1.5,"s":1}'
    decoded = stream().decode(f"[{QUOTE},{broken},{no_time},{TRADE}]")
    assert len(decoded.ticks) == 2
    assert len(decoded.malformed) == 2


def test_a_frame_that_is_not_json_is_one_malformed_item() -> None:
    decoded = stream().decode("[{nonsense")
    assert decoded.ticks == [] and len(decoded.malformed) == 1


def test_negative_or_nan_prices_are_malformed() -> None:
    frame = QUOTE.replace("87.66", "-1")
    assert stream().decode(f"[{frame}]").malformed


def test_auth_and_subscribe_messages_follow_the_documentation() -> None:
    assert json.loads(stream().auth_message()) == {
        "action": "auth",
        "key": "KEY-ID",
        "secret": "SECRET",
    }
    assert json.loads(stream().subscribe_message(["AAPL", "MSFT"])) == {
        "action": "subscribe",
        "trades": ["AAPL", "MSFT"],
        "quotes": ["AAPL", "MSFT"],
    }


def test_the_stream_url_takes_the_data_feed_and_nothing_shows_the_secret() -> None:
    sip = AlpacaStream("K", "S3CR3T", "wss://stream.data.alpaca.markets/v2/{feed}", "sip")
    assert sip.url == "wss://stream.data.alpaca.markets/v2/sip"
    assert "S3CR3T" not in repr(sip)
    with pytest.raises(InvalidArgument, match="iex or sip"):
        AlpacaStream("K", "S", "wss://x/{feed}", "otc")


@given(
    st.decimals(
        min_value=Decimal("0.0001"), max_value=Decimal("999999.9999"), places=4, allow_nan=False
    )
)
def test_any_price_with_up_to_four_decimals_survives_json_to_protobuf_exactly(
    price: Decimal,
) -> None:
    text = QUOTE.replace("87.66", str(price))
    (quote,) = stream().decode(f"[{text}]").ticks
    assert exact(quote_pb(quote, 1, 0.0).bid) == price  # type: ignore[arg-type]


def test_rest_pages_follow_next_page_token_and_map_bars_and_trades() -> None:
    history = AlpacaHistory("K", "S", "https://data.alpaca.markets/", "iex")
    start, end = 1_704_153_600 * 10**9, 1_704_240_000 * 10**9
    request = history.bars_request("AAPL", "1Min", start, end)
    assert request.url == "https://data.alpaca.markets/v2/stocks/AAPL/bars"
    assert request.params["start"] == "2024-01-02T00:00:00Z"
    assert request.params["end"] == "2024-01-03T00:00:00Z"
    assert (request.params["timeframe"], request.params["feed"]) == ("1Min", "iex")
    body = {
        "bars": [json.loads(BAR) | {"T": None}],
        "symbol": "AAPL",
        "next_page_token": "QUFQTHwy",
    }
    page = history.parse_bars(request, "AAPL", "1Min", body)
    assert page.bars[0].symbol == "AAPL" and page.bars[0].trade_count == 461
    assert page.next == PageRequest(request.url, {**request.params, "page_token": "QUFQTHwy"})
    trades = {"trades": [json.loads(TRADE)], "symbol": "AAPL", "next_page_token": None}
    last = history.parse_trades(history.trades_request("AAPL", start, end), "AAPL", trades)
    assert last.next is None and last.trades[0].trade_id == "96921"
    assert history.headers() == {"APCA-API-KEY-ID": "K", "APCA-API-SECRET-KEY": "S"}


def test_alpaca_has_no_second_bars() -> None:
    history = AlpacaHistory("K", "S", "https://data.alpaca.markets", "iex")
    with pytest.raises(InvalidArgument, match="no 1Sec bars"):
        history.bars_request("AAPL", "1Sec", 0, 10**9)


def test_quote_carries_venue_fields_to_the_wire() -> None:
    (quote,) = stream().decode(f"[{QUOTE}]").ticks
    wire = md.Quote.FromString(quote_pb(quote, 1, 0.0).SerializeToString())  # type: ignore[arg-type]
    assert (wire.bid_exchange, wire.tape, list(wire.conditions)) == ("U", "C", ["R"])
