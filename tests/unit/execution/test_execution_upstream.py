"""How execution reads market data's replies: the clock, instruments and previous closes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from cift.marketdata.v1 import marketdata_pb2, marketdata_pb2_grpc
from cift.runtime.errors import InvalidArgument, Unavailable
from cift.trading.intraday import NS_PER_DAY
from cift.trading.orders import OrderRequest, validate_order_request
from cift.trading.vocabulary import OrderType, Side
from services.execution.adapters import upstream
from services.execution.adapters.upstream import MarketReference, clock_from_reply
from services.marketdata.events import instrument_pb
from services.marketdata.instruments import default_universe


def stamp(ns: int) -> Timestamp:
    value = Timestamp()
    value.FromNanoseconds(ns)
    return value


def test_a_calendar_without_a_next_close_never_closes() -> None:
    reply = marketdata_pb2.GetClockResponse(timestamp=stamp(1_000), is_open=True, calendar="24x7")
    clock = clock_from_reply(reply)
    assert clock.now_ns == 1_000 and clock.is_open
    assert clock.next_close_ns is None


def test_a_session_calendar_reports_its_next_close() -> None:
    reply = marketdata_pb2.GetClockResponse(
        timestamp=stamp(1_000), is_open=True, next_close=stamp(5_000), calendar="XNYS"
    )
    assert clock_from_reply(reply).next_close_ns == 5_000


def test_a_close_at_the_epoch_is_still_a_close() -> None:
    # HasField, not truthiness: a set timestamp of zero is a value, not absence.
    reply = marketdata_pb2.GetClockResponse(timestamp=stamp(1_000), next_close=stamp(0))
    assert clock_from_reply(reply).next_close_ns == 0


def test_a_closed_market_reports_its_next_open() -> None:
    reply = marketdata_pb2.GetClockResponse(
        timestamp=stamp(1_000), next_open=stamp(3_000), next_close=stamp(5_000)
    )
    assert clock_from_reply(reply).next_open_ns == 3_000


def test_a_closed_market_reports_its_previous_close_and_an_unset_one_is_none() -> None:
    reply = marketdata_pb2.GetClockResponse(
        timestamp=stamp(1_000), next_open=stamp(3_000), previous_close=stamp(0)
    )
    assert clock_from_reply(reply).previous_close_ns == 0
    assert clock_from_reply(marketdata_pb2.GetClockResponse()).previous_close_ns is None


# ---- instruments and previous closes, from a real grpc.aio server playing market data

DAY = NS_PER_DAY


class FakeMarketData(marketdata_pb2_grpc.MarketDataServiceServicer):
    """Serves 1Day bars from `closes` (symbol -> {bar start: close}) and records every ask;
    lists an instrument for each of those symbols unless `outage` says it is down."""

    def __init__(self, closes: dict[str, dict[int, float]]) -> None:
        self.closes = closes
        self.asked: list[marketdata_pb2.GetBarsRequest] = []
        self.instrument_calls = 0
        self.outage = False
        # What GetInstrument answers for a symbol, when not the plain one below.
        self.instruments: dict[str, marketdata_pb2.Instrument] = {}

    async def GetInstrument(
        self, request: marketdata_pb2.GetInstrumentRequest, context: Any
    ) -> marketdata_pb2.GetInstrumentResponse:
        self.instrument_calls += 1
        if self.outage:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
        if request.symbol in self.instruments:
            return marketdata_pb2.GetInstrumentResponse(instrument=self.instruments[request.symbol])
        if request.symbol not in self.closes:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"Unknown symbol {request.symbol}.")
        return marketdata_pb2.GetInstrumentResponse(
            instrument=marketdata_pb2.Instrument(
                symbol=request.symbol, tick_size="0.01", lot_size="1", tradable=True
            )
        )

    async def GetBars(
        self, request: marketdata_pb2.GetBarsRequest, context: Any
    ) -> marketdata_pb2.GetBarsResponse:
        self.asked.append(request)
        if request.symbol not in self.closes:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"Unknown symbol {request.symbol}.")
        start, end = request.start.ToNanoseconds(), request.end.ToNanoseconds()
        return marketdata_pb2.GetBarsResponse(
            symbol=request.symbol,
            timeframe=request.timeframe,
            bars=[
                marketdata_pb2.Bar(symbol=request.symbol, timeframe="1Day", close=close)
                for bar_start, close in sorted(self.closes[request.symbol].items())
                if start <= bar_start < end
            ],
        )


@pytest.fixture
async def market() -> AsyncIterator[tuple[FakeMarketData, MarketReference]]:
    fake = FakeMarketData({"AAPL": {0: 101.25, DAY: 102.5, 2 * DAY: 99.0}, "NEWCO": {}})
    server = grpc.aio.server()
    marketdata_pb2_grpc.add_MarketDataServiceServicer_to_server(fake, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield fake, MarketReference(channel)
    await server.stop(0)


async def test_the_previous_close_is_the_last_daily_bar_before_the_day(
    market: tuple[FakeMarketData, MarketReference],
) -> None:
    fake, reference = market
    assert await reference.previous_closes(["AAPL"], 2 * DAY) == {"AAPL": Decimal("102.5")}
    (asked,) = fake.asked
    assert asked.timeframe == "1Day" and asked.end.ToNanoseconds() == 2 * DAY


async def test_the_previous_close_is_asked_once_per_symbol_per_trading_day(
    market: tuple[FakeMarketData, MarketReference],
) -> None:
    fake, reference = market
    await reference.previous_closes(["AAPL"], 2 * DAY)
    assert await reference.previous_closes(["AAPL"], 2 * DAY) == {"AAPL": Decimal("102.5")}
    assert len(fake.asked) == 1
    assert await reference.previous_closes(["AAPL"], 3 * DAY) == {"AAPL": Decimal(99)}
    assert len(fake.asked) == 2


async def test_a_symbol_without_daily_bars_has_no_close_and_is_asked_again_later(
    market: tuple[FakeMarketData, MarketReference], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, reference = market
    assert await reference.previous_closes(["NEWCO", "GONE"], DAY) == {}
    await reference.previous_closes(["NEWCO"], DAY)
    assert len(fake.asked) == 2  # the misses are remembered for a while
    monkeypatch.setattr(upstream, "MISSING_CLOSE_RETRY_S", 0.0)
    fake.closes["NEWCO"] = {0: 12.0}
    assert await reference.previous_closes(["NEWCO"], DAY) == {"NEWCO": Decimal(12)}


async def test_concurrent_first_lookups_share_one_call(
    market: tuple[FakeMarketData, MarketReference],
) -> None:
    fake, reference = market
    found = await asyncio.gather(*(reference.instrument("AAPL") for _ in range(5)))
    assert {instrument.symbol for instrument in found} == {"AAPL"}
    assert found[0].tick_size == Decimal("0.01")
    assert fake.instrument_calls == 1


async def test_an_unlisted_symbol_is_an_invalid_argument_naming_it(
    market: tuple[FakeMarketData, MarketReference],
) -> None:
    _, reference = market
    with pytest.raises(InvalidArgument, match="Unknown symbol 'NOPE': no instrument is listed"):
        await reference.instrument("NOPE")


async def test_market_data_down_on_a_first_lookup_is_unavailable_and_retried(
    market: tuple[FakeMarketData, MarketReference],
) -> None:
    fake, reference = market
    fake.outage = True
    with pytest.raises(Unavailable, match="market data service is unavailable"):
        await reference.instrument("AAPL")
    fake.outage = False
    assert (await reference.instrument("AAPL")).symbol == "AAPL"


def buy(symbol: str, qty: Decimal) -> OrderRequest:
    return OrderRequest(symbol, Side.BUY, OrderType.MARKET, qty=qty)


async def test_a_delisted_symbol_is_refused_at_entry_and_a_halt_is_seen(
    market: tuple[FakeMarketData, MarketReference],
) -> None:
    fake, reference = market
    for symbol, status in (
        ("GONE", marketdata_pb2.INSTRUMENT_STATUS_INACTIVE),
        ("HALT", marketdata_pb2.INSTRUMENT_STATUS_HALTED),
    ):
        fake.instruments[symbol] = marketdata_pb2.Instrument(
            symbol=symbol, tick_size="0.01", lot_size="1", tradable=True, status=status
        )
    with pytest.raises(InvalidArgument, match="GONE is not tradable"):
        validate_order_request(buy("GONE", Decimal(1)), await reference.instrument("GONE"))
    halted = await reference.instrument("HALT")
    assert halted.halted and halted.tradable  # risk refuses it as INSTRUMENT_HALTED


async def test_a_fractionable_symbol_as_market_data_lists_it_takes_fractional_quantities(
    market: tuple[FakeMarketData, MarketReference],
) -> None:
    fake, reference = market
    fake.instruments["AAPL"] = instrument_pb(default_universe().get("AAPL"))
    fake.instruments["SNDL"] = instrument_pb(default_universe().get("SNDL"))
    validate_order_request(buy("AAPL", Decimal("0.5")), await reference.instrument("AAPL"))
    with pytest.raises(InvalidArgument, match="SNDL does not trade in fractional shares"):
        validate_order_request(buy("SNDL", Decimal("0.5")), await reference.instrument("SNDL"))
