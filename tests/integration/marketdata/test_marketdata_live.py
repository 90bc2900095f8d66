"""The live path: simulator → Kafka → PostgreSQL/Redis/bars → RPCs and streams."""

from __future__ import annotations

import asyncio
import io
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import numpy as np
import polars as pl
import pytest

from cift import indicators
from cift.marketdata.v1 import marketdata_pb2 as md
from cift.runtime.timestamps import timestamp
from services.marketdata.ingest import LATEST_QUOTES_KEY
from services.marketdata.server import WARMUP_FACTOR
from tests.integration.marketdata.bar_reference import reference_bars
from tests.integration.marketdata.marketdata_helpers import (
    METADATA,
    RunningService,
    eventually,
    new_scenario,
)

pytestmark = pytest.mark.integration
S = 1_000_000_000


@pytest.fixture(scope="module")
async def live(infra: Any) -> AsyncIterator[RunningService]:
    async with (
        new_scenario(infra) as scenario,
        scenario.running(
            marketdata_feed="simulator", marketdata_rate=10.0, marketdata_seed=5
        ) as service,
    ):
        # Let a few seconds of market build up: 1Sec bars close, streams have history.
        await eventually(lambda: bars_ready(service, 4))
        yield service


async def bars_ready(service: RunningService, count: int) -> bool | None:
    response = await service.stub.GetBars(
        md.GetBarsRequest(symbol="AAPL", timeframe="1Sec"), metadata=METADATA
    )
    return True if len(response.bars) >= count else None


async def latest_quote(service: RunningService, symbol: str) -> md.Quote | None:
    try:
        response = await service.stub.GetLatestQuote(
            md.GetLatestQuoteRequest(symbol=symbol), metadata=METADATA
        )
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND
        return None
    return response.quote


async def test_ticks_flow_from_the_simulator_to_the_latest_quote_rpc(live: RunningService) -> None:
    first = await eventually(lambda: latest_quote(live, "aapl"))
    assert first.symbol == "AAPL" and 0 < first.bid < first.ask
    assert first.bid_size > 0 and first.bid_size % 100 == 0
    assert abs(first.timestamp.ToNanoseconds() - time.time_ns()) < 30 * S

    async def newer() -> md.Quote | None:
        quote = await latest_quote(live, "AAPL")
        return quote if quote is not None and quote.sequence > first.sequence else None

    assert (await eventually(newer)).sequence > first.sequence
    # Redis holds the same latest quotes for every other reader.
    stored = await live.context.redis.hget(LATEST_QUOTES_KEY, "AAPL")
    assert isinstance(stored, bytes)
    assert md.Quote.FromString(stored).sequence >= first.sequence
    both = await live.stub.GetLatestQuotes(
        md.GetLatestQuotesRequest(symbols=["AAPL,msft"]), metadata=METADATA
    )
    assert set(both.quotes) == {"AAPL", "MSFT"}


async def test_bars_equal_bars_computed_independently_from_the_stored_trades(
    live: RunningService,
) -> None:
    response = await live.stub.GetBars(
        md.GetBarsRequest(symbol="MSFT", timeframe="1Sec", page_size=10_000), metadata=METADATA
    )
    # Every bar but the newest has closed (a symbol has one open bar per timeframe).
    closed = response.bars[:-1]
    assert len(closed) >= 2
    first, last = closed[0].start_time.ToNanoseconds(), closed[-1].start_time.ToNanoseconds()
    async with live.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT ts_ns, price, size FROM ticks WHERE symbol = 'MSFT' AND kind = 2 "
            "AND ts_ns >= $1 AND ts_ns < $2 ORDER BY ts_ns, sequence",
            first,
            last + S,
        )
    expected = reference_bars((("MSFT", r["ts_ns"], r["price"], r["size"]) for r in rows), ["1Sec"])
    assert len(expected) == len(closed)
    for bar in closed:
        o, h, lo, c, volume, notional, count = expected[
            ("MSFT", "1Sec", bar.start_time.ToNanoseconds())
        ]
        assert (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.trade_count) == (
            o,
            h,
            lo,
            c,
            volume,
            count,
        )
        assert bar.vwap == pytest.approx(notional / volume, rel=1e-12)


async def test_bars_page_through_a_time_range_without_gaps_or_repeats(live: RunningService) -> None:
    full = await live.stub.GetBars(
        md.GetBarsRequest(symbol="SPY", timeframe="1Sec"), metadata=METADATA
    )
    end = full.bars[-1].start_time
    start = full.bars[0].start_time
    pages: list[md.Bar] = []
    token = ""
    while True:
        page = await live.stub.GetBars(
            md.GetBarsRequest(
                symbol="SPY", timeframe="1Sec", start=start, end=end, page_size=2, page_token=token
            ),
            metadata=METADATA,
        )
        assert len(page.bars) <= 2
        pages += page.bars
        token = page.next_page_token
        if not token:
            break
    assert [b.start_time for b in pages] == [b.start_time for b in full.bars[:-1]]


async def test_trades_page_in_time_order(live: RunningService) -> None:
    first = await live.stub.GetTrades(
        md.GetTradesRequest(symbol="QQQ", page_size=3), metadata=METADATA
    )
    assert len(first.trades) == 3 and first.next_page_token
    second = await live.stub.GetTrades(
        md.GetTradesRequest(symbol="QQQ", page_size=3, page_token=first.next_page_token),
        metadata=METADATA,
    )
    both = [(t.timestamp.ToNanoseconds(), t.sequence) for t in [*first.trades, *second.trades]]
    assert both == sorted(both) and len(set(both)) == len(both)


async def collect(stream: Any, count: int, timeout_s: float = 15.0) -> list[Any]:
    messages: list[Any] = []
    async with asyncio.timeout(timeout_s):
        async for message in stream:
            messages.append(message)
            if len(messages) >= count:
                break
    stream.cancel()
    return messages


async def test_trade_stream_delivers_in_sequence_order_and_resumes_without_gaps(
    live: RunningService,
) -> None:
    messages = await collect(live.stub.StreamTrades(md.StreamTradesRequest(), metadata=METADATA), 6)
    trades = [t for m in messages for t in m.trades]
    sequences = [t.sequence for t in trades]
    assert (
        len(trades) >= 6
        and sequences == sorted(sequences)
        and len(set(sequences)) == len(sequences)
    )

    resume_from = messages[2].last_sequence
    resumed = await collect(
        live.stub.StreamTrades(
            md.StreamTradesRequest(resume_after_sequence=resume_from), metadata=METADATA
        ),
        2,
    )
    replayed = [t.sequence for m in resumed for t in m.trades]
    assert replayed[0] > resume_from
    # Exactly the trades the first stream saw after the resume point come first again.
    seen_after = [s for s in sequences if s > resume_from]
    assert replayed[: len(seen_after)] == seen_after[: len(replayed)]


async def test_quote_stream_filters_symbols_and_batches_quotes(live: RunningService) -> None:
    messages = await collect(
        live.stub.StreamQuotes(md.StreamQuotesRequest(symbols=["AAPL", "spy"]), metadata=METADATA),
        5,
    )
    quotes = [q for m in messages for q in m.quotes]
    assert quotes and {q.symbol for q in quotes} <= {"AAPL", "SPY"}
    sequences = [q.sequence for q in quotes]
    assert sequences == sorted(sequences)
    assert all(m.last_sequence >= (m.quotes[-1].sequence if m.quotes else 0) for m in messages)


async def test_a_stalled_subscriber_does_not_delay_the_others(live: RunningService) -> None:
    stalled: list[Any] = [
        live.stub.StreamQuotes(md.StreamQuotesRequest(), metadata=METADATA) for _ in range(3)
    ]
    stalled += [
        live.stub.StreamTrades(md.StreamTradesRequest(), metadata=METADATA) for _ in range(3)
    ]
    try:
        await asyncio.sleep(3.0)  # the stalled calls never read; their server loops block
        messages = await collect(
            live.stub.StreamTrades(md.StreamTradesRequest(), metadata=METADATA), 20
        )
        now = time.time_ns()
        lags = [now - t.timestamp.ToNanoseconds() for m in messages[-5:] for t in m.trades]
        assert lags and max(lags) < 2 * S
    finally:
        for call in stalled:
            call.cancel()


async def test_bar_stream_delivers_closed_bars_and_replays_after_a_time(
    live: RunningService,
) -> None:
    recent = await live.stub.GetBars(
        md.GetBarsRequest(symbol="AAPL", timeframe="1Sec"), metadata=METADATA
    )
    after = recent.bars[-4].start_time
    messages = await collect(
        live.stub.StreamBars(
            md.StreamBarsRequest(symbols=["AAPL"], timeframe="1Sec", resume_after=after),
            metadata=METADATA,
        ),
        3,
    )
    bars = [b for m in messages for b in m.bars]
    starts = [b.start_time.ToNanoseconds() for b in bars]
    assert bars and all(b.symbol == "AAPL" and b.timeframe == "1Sec" for b in bars)
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert starts[0] == recent.bars[-3].start_time.ToNanoseconds()


async def test_indicators_match_the_domain_kernels_over_the_bars(live: RunningService) -> None:
    bars = await live.stub.GetBars(
        md.GetBarsRequest(symbol="AAPL", timeframe="1Sec"), metadata=METADATA
    )
    end = timestamp(bars.bars[-1].start_time.ToNanoseconds() + S)
    response = await live.stub.GetIndicators(
        md.GetIndicatorsRequest(
            symbol="AAPL", timeframe="1Sec", indicators="sma:3,rsi:2,vwap,ofi,imbalance", end=end
        ),
        metadata=METADATA,
    )
    close = np.array([b.close for b in bars.bars])
    assert len(response.timestamps) == len(close)
    series = {s.spec: {o.name: np.array(o.values) for o in s.outputs} for s in response.indicators}
    # The newest bar is still open and may have moved between the two calls.
    np.testing.assert_allclose(
        series["sma:3"]["sma"][:-1], indicators.sma(close, 3)[:-1], rtol=1e-12
    )
    np.testing.assert_allclose(
        series["rsi:2"]["rsi"][:-1], indicators.rsi(close, 2)[:-1], rtol=1e-12
    )
    # The newest second's quotes may still be in flight to PostgreSQL when its bar exists.
    assert np.isfinite(series["imbalance"]["imbalance"]).sum() >= len(close) - 1
    assert np.isfinite(series["ofi:1"]["ofi"]).sum() >= len(close) - 1
    limited = await live.stub.GetIndicators(
        md.GetIndicatorsRequest(
            symbol="AAPL", timeframe="1Sec", indicators="ema:2", end=end, limit=2
        ),
        metadata=METADATA,
    )
    assert list(limited.timestamps) == [b.start_time for b in bars.bars[-2:]]
    # A limited call warms EMA(2) up over WARMUP_FACTOR times its lookback before the
    # limit, not over all history: the kernel over that same window is the reference.
    # Compare at the older of the two bars: the newest may still be moving.
    window = close[-(2 + 2 * WARMUP_FACTOR) :]
    assert limited.indicators[0].outputs[0].values[0] == pytest.approx(
        indicators.ema(window, 2)[-2], rel=1e-12
    )


async def test_export_streams_a_parquet_file_of_the_bars(live: RunningService) -> None:
    bars = await live.stub.GetBars(
        md.GetBarsRequest(symbol="AAPL", timeframe="1Sec"), metadata=METADATA
    )
    chunks = [
        m.chunk
        async for m in live.stub.ExportBars(
            md.ExportBarsRequest(
                symbols=["AAPL"],
                timeframe="1Sec",
                start=bars.bars[0].start_time,
                end=bars.bars[-1].start_time,
            ),
            metadata=METADATA,
        )
    ]
    frame = pl.read_parquet(io.BytesIO(b"".join(chunks)))
    assert frame.columns == [
        "symbol",
        "start_time",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "vwap",
        "trade_count",
    ]
    assert frame.height == len(bars.bars) - 1
    assert frame["close"].to_list() == [b.close for b in bars.bars[:-1]]
    first = frame["start_time"][0]
    assert math.isclose(first.timestamp(), bars.bars[0].start_time.ToNanoseconds() / S)


async def test_reference_rpcs_instruments_and_clock(live: RunningService) -> None:
    listed = await live.stub.ListInstruments(md.ListInstrumentsRequest(), metadata=METADATA)
    symbols = [i.symbol for i in listed.instruments]
    assert symbols == sorted(symbols) and "AAPL" in symbols
    aapl = await live.stub.GetInstrument(md.GetInstrumentRequest(symbol="aapl"), metadata=METADATA)
    assert aapl.instrument.tick_size == "0.01" and aapl.instrument.tradable
    clock = await live.stub.GetClock(md.GetClockRequest(), metadata=METADATA)
    assert clock.is_open and clock.calendar == "24x7" and not clock.HasField("next_close")
    assert not clock.HasField("previous_close")


@pytest.mark.parametrize(
    ("call", "code", "message"),
    [
        ("GetLatestQuote", md.GetLatestQuoteRequest(symbol="NOPE"), grpc.StatusCode.NOT_FOUND),
        ("GetInstrument", md.GetInstrumentRequest(symbol="NOPE"), grpc.StatusCode.NOT_FOUND),
        ("GetBars", md.GetBarsRequest(symbol="NOPE", timeframe="1Min"), grpc.StatusCode.NOT_FOUND),
        (
            "GetBars",
            md.GetBarsRequest(symbol="AAPL", timeframe="2Min"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            "GetBars",
            md.GetBarsRequest(symbol="AAPL", timeframe=""),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            "GetBars",
            md.GetBarsRequest(
                symbol="AAPL", timeframe="1Min", start=timestamp(2 * S), end=timestamp(S)
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            "GetBars",
            md.GetBarsRequest(symbol="AAPL", timeframe="1Min", page_size=10_001),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            "GetBars",
            md.GetBarsRequest(symbol="AAPL", timeframe="1Min", page_token="garbage"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            "GetTrades",
            md.GetTradesRequest(symbol="AAPL", page_size=-1),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            "GetLatestQuotes",
            md.GetLatestQuotesRequest(symbols=["AAPL,NOPE"]),
            grpc.StatusCode.NOT_FOUND,
        ),
        (
            "GetIndicators",
            md.GetIndicatorsRequest(symbol="AAPL", indicators="rsi:0"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            "GetIndicators",
            md.GetIndicatorsRequest(symbol="AAPL", indicators="sma:999999999"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            "GetIndicators",
            md.GetIndicatorsRequest(symbol="AAPL", indicators="bbands:20:-1"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            "GetIndicators",
            md.GetIndicatorsRequest(symbol="AAPL", indicators="magic:3"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            "GetIndicators",
            md.GetIndicatorsRequest(symbol="AAPL", indicators="sma", limit=10_001),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ],
)
async def test_bad_requests_get_a_clear_status(
    live: RunningService, call: str, code: Any, message: Any
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await getattr(live.stub, call)(code, metadata=METADATA)
    assert error.value.code() == message
    assert error.value.details()


async def test_bad_stream_requests_fail_before_streaming(live: RunningService) -> None:
    for stream in (
        live.stub.StreamQuotes(md.StreamQuotesRequest(symbols=["NOPE"]), metadata=METADATA),
        live.stub.StreamBars(md.StreamBarsRequest(timeframe="7Min"), metadata=METADATA),
        live.stub.ExportBars(
            md.ExportBarsRequest(symbols=["AAPL"], timeframe="1Min"), metadata=METADATA
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await collect(stream, 1)
        assert error.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)


async def test_history_without_a_credential_is_unauthenticated(live: RunningService) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await live.stub.GetBars(md.GetBarsRequest(symbol="AAPL", timeframe="1Min"))
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_reference_data_needs_no_credential_inside_the_mesh(live: RunningService) -> None:
    """Execution's session clock and equity marks run for no user and must still read these."""
    clock = await live.stub.GetClock(md.GetClockRequest())
    assert clock.HasField("timestamp")
    instrument = await live.stub.GetInstrument(md.GetInstrumentRequest(symbol="AAPL"))
    assert instrument.instrument.symbol == "AAPL"
