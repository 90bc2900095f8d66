"""`cift.marketdata.v1.MarketDataService`: decode the request, call the domain, encode the answer.

Reads come from three places: the universe (instruments) in memory, the latest
quotes in Redis, and history (bars, trades, quotes for order-flow indicators) in
PostgreSQL. Streams are served from the local hub (streams.py). Errors are the
runtime's domain exceptions; the interceptor maps them to gRPC status codes.
"""

from __future__ import annotations

import base64
import io
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import asyncpg
import numpy as np
import polars as pl
from google.protobuf.timestamp_pb2 import Timestamp
from redis import asyncio as aioredis

from cift import indicators as kernels
from cift.marketdata.v1 import marketdata_pb2, marketdata_pb2_grpc
from cift.runtime.errors import InvalidArgument, NotFound
from cift.runtime.timestamps import NS_PER_S, timestamp, timestamp_of_ns
from services.marketdata import indicators, store
from services.marketdata.bars import (
    TRADE_BAR_SCHEMA,
    Bar,
    Timeframe,
    bucket_start,
    parse_timeframe,
)
from services.marketdata.clock import AlwaysOpenCalendar, MarketCalendar
from services.marketdata.events import bar_pb, instrument_pb, trade_pb
from services.marketdata.fanout import split_batches
from services.marketdata.ingest import LATEST_QUOTES_KEY
from services.marketdata.instruments import Universe
from services.marketdata.streams import StreamHub, serve, waker

NS_PER_DAY = 86_400 * NS_PER_S
DEFAULT_PAGE = 1000
MAX_PAGE = 10_000
DEFAULT_INDICATOR_LIMIT = 500
MAX_INDICATOR_LIMIT = 10_000
MAX_EXPORT_ROWS = 2_000_000
MAX_ORDER_FLOW_QUOTES = 2_000_000
# Stored bars a resuming StreamBars replays before going live.
MAX_BAR_HISTORY = 10_000
EXPORT_CHUNK_BYTES = 256 * 1024
# Warm-up read before the first reported bar: the longest lookback times this, so
# recursive indicators (EMA, RSI, MACD) have settled where history allows.
WARMUP_FACTOR = 4


def _page_size(value: int, default: int, maximum: int, name: str = "page_size") -> int:
    if value < 0:
        raise InvalidArgument(f"{name} must not be negative.")
    if value > maximum:
        raise InvalidArgument(f"{name} may be at most {maximum}, not {value}.")
    return value or default


def _time_range(
    start: Timestamp,
    end: Timestamp,
    has_start: bool,
    has_end: bool,
    *,
    default_span_ns: int = NS_PER_DAY,
) -> tuple[int, int]:
    end_ns = end.ToNanoseconds() if has_end else time.time_ns()
    start_ns = start.ToNanoseconds() if has_start else end_ns - default_span_ns
    if start_ns >= end_ns:
        raise InvalidArgument("start must be before end (start is inclusive, end exclusive).")
    return start_ns, end_ns


@dataclass(frozen=True)
class _Cursor:
    kind: str
    symbol: str
    start_ns: int
    end_ns: int
    after_ts: int
    after_seq: int

    def encode(self) -> str:
        raw = f"{self.kind}|{self.symbol}|{self.start_ns}|{self.end_ns}|{self.after_ts}|{self.after_seq}"
        return base64.urlsafe_b64encode(raw.encode()).decode()

    @staticmethod
    def decode(token: str, kind: str, symbol: str) -> _Cursor:
        try:
            parts = base64.urlsafe_b64decode(token.encode()).decode().split("|")
            cursor = _Cursor(parts[0], parts[1], *(int(p) for p in parts[2:]))
        except (ValueError, TypeError, IndexError):
            raise InvalidArgument("page_token is not one this server issued.") from None
        if cursor.kind != kind or cursor.symbol != symbol:
            raise InvalidArgument(
                "page_token belongs to another query; repeat the same parameters."
            )
        return cursor


def _paged_range(request: Any, kind: str, symbol: str) -> tuple[int, int, _Cursor | None]:
    """The query's range; a page token carries the first page's range, so 'now' stays put."""
    if request.page_token:
        cursor = _Cursor.decode(request.page_token, kind, symbol)
        if (request.HasField("start") and request.start.ToNanoseconds() != cursor.start_ns) or (
            request.HasField("end") and request.end.ToNanoseconds() != cursor.end_ns
        ):
            raise InvalidArgument(
                "page_token belongs to another time range; repeat the same parameters."
            )
        return cursor.start_ns, cursor.end_ns, cursor
    start_ns, end_ns = _time_range(
        request.start, request.end, request.HasField("start"), request.HasField("end")
    )
    return start_ns, end_ns, None


class MarketDataServicer(marketdata_pb2_grpc.MarketDataServiceServicer):
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        universe: Universe,
        calendar: MarketCalendar,
        hub: StreamHub,
        stream_batch: int,
        heartbeat_s: float,
        local_quote: Callable[[str], marketdata_pb2.Quote | None] | None = None,
        clock_offset_ns: int = 0,
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.universe = universe
        self.calendar = calendar
        # The market clock's lead over the wall clock (CIFT_MARKETDATA_CLOCK_START).
        self.clock_offset_ns = clock_offset_ns
        self.hub = hub
        self.stream_batch = stream_batch
        self.heartbeat_s = heartbeat_s
        # This process's ingest's copy (when it runs one); Redis answers otherwise.
        self.local_quote = local_quote or (lambda _symbol: None)

    # --- reference data -------------------------------------------------------------

    async def ListInstruments(
        self, request: marketdata_pb2.ListInstrumentsRequest, context: Any
    ) -> marketdata_pb2.ListInstrumentsResponse:
        wanted_class = request.asset_class
        wanted_status = request.status
        instruments = [
            instrument_pb(i) for i in sorted(self.universe.instruments, key=lambda i: i.symbol)
        ]
        return marketdata_pb2.ListInstrumentsResponse(
            instruments=[
                i
                for i in instruments
                if wanted_class in (marketdata_pb2.ASSET_CLASS_UNSPECIFIED, i.asset_class)
                and wanted_status in (marketdata_pb2.INSTRUMENT_STATUS_UNSPECIFIED, i.status)
            ]
        )

    async def GetInstrument(
        self, request: marketdata_pb2.GetInstrumentRequest, context: Any
    ) -> marketdata_pb2.GetInstrumentResponse:
        return marketdata_pb2.GetInstrumentResponse(
            instrument=instrument_pb(self.universe.get(request.symbol))
        )

    async def GetClock(
        self, request: marketdata_pb2.GetClockRequest, context: Any
    ) -> marketdata_pb2.GetClockResponse:
        now = time.time_ns() + self.clock_offset_ns
        state = self.calendar.state(now)
        return marketdata_pb2.GetClockResponse(
            timestamp=timestamp(now),
            is_open=state.is_open,
            calendar="24x7" if isinstance(self.calendar, AlwaysOpenCalendar) else "XNYS",
            next_open=timestamp_of_ns(state.next_open_ns),
            next_close=timestamp_of_ns(state.next_close_ns),
            previous_close=timestamp_of_ns(state.previous_close_ns),
        )

    # --- latest quotes ----------------------------------------------------------------

    async def GetLatestQuote(
        self, request: marketdata_pb2.GetLatestQuoteRequest, context: Any
    ) -> marketdata_pb2.GetLatestQuoteResponse:
        symbol = self.universe.get(request.symbol).symbol
        local = self.local_quote(symbol)
        if local is not None:
            return marketdata_pb2.GetLatestQuoteResponse(quote=local)
        raw = await self.redis.hget(LATEST_QUOTES_KEY, symbol)  # type: ignore[misc]
        if raw is None:
            raise NotFound(f"{symbol} has not been quoted yet.")
        assert isinstance(raw, bytes)
        return marketdata_pb2.GetLatestQuoteResponse(quote=marketdata_pb2.Quote.FromString(raw))

    async def GetLatestQuotes(
        self, request: marketdata_pb2.GetLatestQuotesRequest, context: Any
    ) -> marketdata_pb2.GetLatestQuotesResponse:
        symbols = self.universe.resolve(request.symbols)
        if not symbols:
            raise InvalidArgument("Name at least one symbol, e.g. symbols=AAPL,MSFT.")
        raws = await self.redis.hmget(LATEST_QUOTES_KEY, list(symbols))  # type: ignore[misc]
        response = marketdata_pb2.GetLatestQuotesResponse()
        for symbol, raw in zip(symbols, raws, strict=True):
            if isinstance(raw, bytes):
                response.quotes[symbol].ParseFromString(raw)
        return response

    # --- history ----------------------------------------------------------------------

    async def GetBars(
        self, request: marketdata_pb2.GetBarsRequest, context: Any
    ) -> marketdata_pb2.GetBarsResponse:
        symbol = self.universe.get(request.symbol).symbol
        if not request.timeframe:
            raise InvalidArgument(
                "timeframe is required: one of 1Sec, 1Min, 5Min, 15Min, 1Hour, 1Day."
            )
        timeframe = parse_timeframe(request.timeframe)
        limit = _page_size(request.page_size, DEFAULT_PAGE, MAX_PAGE)
        start_ns, end_ns, cursor = _paged_range(request, f"bars:{timeframe.name}", symbol)
        async with self.pool.acquire() as conn:
            bars = await store.bars_page(
                conn,
                symbol,
                timeframe.name,
                start_ns,
                end_ns,
                cursor.after_ts if cursor else None,
                limit + 1,
            )
        token = ""
        if len(bars) > limit:
            bars = bars[:limit]
            token = _Cursor(
                f"bars:{timeframe.name}", symbol, start_ns, end_ns, bars[-1].start_ns, 0
            ).encode()
        return marketdata_pb2.GetBarsResponse(
            symbol=symbol,
            timeframe=timeframe.name,
            bars=[bar_pb(b) for b in bars],
            next_page_token=token,
        )

    async def GetTrades(
        self, request: marketdata_pb2.GetTradesRequest, context: Any
    ) -> marketdata_pb2.GetTradesResponse:
        symbol = self.universe.get(request.symbol).symbol
        limit = _page_size(request.page_size, DEFAULT_PAGE, MAX_PAGE)
        start_ns, end_ns, cursor = _paged_range(request, "trades", symbol)
        after = (cursor.after_ts, cursor.after_seq) if cursor else None
        async with self.pool.acquire() as conn:
            rows = await store.trades_page(conn, symbol, start_ns, end_ns, after, limit + 1)
        token = ""
        if len(rows) > limit:
            rows = rows[:limit]
            last_seq, last_trade = rows[-1]
            token = _Cursor("trades", symbol, start_ns, end_ns, last_trade.ts_ns, last_seq).encode()
        return marketdata_pb2.GetTradesResponse(
            symbol=symbol, trades=[trade_pb(t, seq) for seq, t in rows], next_page_token=token
        )

    async def GetIndicators(
        self, request: marketdata_pb2.GetIndicatorsRequest, context: Any
    ) -> marketdata_pb2.GetIndicatorsResponse:
        symbol = self.universe.get(request.symbol).symbol
        timeframe = parse_timeframe(request.timeframe or "1Min")
        specs = indicators.parse_indicator_specs(request.indicators)
        limit = _page_size(request.limit, DEFAULT_INDICATOR_LIMIT, MAX_INDICATOR_LIMIT, "limit")
        end_ns = request.end.ToNanoseconds() if request.HasField("end") else time.time_ns()
        start_ns = request.start.ToNanoseconds() if request.HasField("start") else None
        if start_ns is not None and start_ns >= end_ns:
            raise InvalidArgument("start must be before end (start is inclusive, end exclusive).")
        warmup = max(_lookback(spec) for spec in specs) * WARMUP_FACTOR
        async with self.pool.acquire() as conn:
            bars = await store.latest_bars(
                conn, symbol, timeframe.name, end_ns, min(limit + warmup, 50_000)
            )
            flow = None
            if any(spec.needs_quotes for spec in specs) and bars:
                rows = await store.quotes_between(
                    conn,
                    symbol,
                    bars[0].start_ns,
                    bars[-1].start_ns + timeframe.ns,
                    MAX_ORDER_FLOW_QUOTES + 1,
                )
                if len(rows) > MAX_ORDER_FLOW_QUOTES:
                    raise InvalidArgument(
                        "Too many quotes for order-flow indicators over this range; "
                        "use a shorter timeframe or a smaller limit."
                    )
                flow = _quotes_per_bar(rows, bars, timeframe)
        report = [i for i, b in enumerate(bars) if start_ns is None or b.start_ns >= start_ns][
            -limit:
        ]
        close = np.array([b.close for b in bars], dtype=np.float64)
        volume = np.array([b.volume for b in bars], dtype=np.float64)
        vwap_price = np.array([b.vwap for b in bars], dtype=np.float64)
        response = marketdata_pb2.GetIndicatorsResponse(
            symbol=symbol,
            timeframe=timeframe.name,
            timestamps=[timestamp(bars[i].start_ns) for i in report],
        )
        for spec in specs:
            outputs = _compute(spec, close, volume, vwap_price, flow)
            series = response.indicators.add(
                spec=spec.label, name=spec.kind, params=list(spec.params)
            )
            for name, values in outputs.items():
                series.outputs.add(name=name, values=values[report].tolist() if report else [])
        return response

    async def ExportBars(
        self, request: marketdata_pb2.ExportBarsRequest, context: Any
    ) -> AsyncIterator[marketdata_pb2.ExportBarsResponse]:
        symbols = self.universe.resolve(request.symbols)
        if not symbols:
            raise InvalidArgument("Name at least one symbol to export.")
        if not request.timeframe:
            raise InvalidArgument(
                "timeframe is required: one of 1Sec, 1Min, 5Min, 15Min, 1Hour, 1Day."
            )
        timeframe = parse_timeframe(request.timeframe)
        if not request.HasField("start"):
            raise InvalidArgument("start is required for an export.")
        start_ns, end_ns = _time_range(request.start, request.end, True, request.HasField("end"))
        async with self.pool.acquire() as conn:
            rows = await store.export_bars(
                conn, symbols, timeframe.name, start_ns, end_ns, MAX_EXPORT_ROWS + 1
            )
        if len(rows) > MAX_EXPORT_ROWS:
            raise InvalidArgument(
                f"The export would exceed {MAX_EXPORT_ROWS} bars; narrow the range."
            )
        payload = _parquet(rows)
        for offset in range(0, len(payload), EXPORT_CHUNK_BYTES):
            yield marketdata_pb2.ExportBarsResponse(
                chunk=payload[offset : offset + EXPORT_CHUNK_BYTES]
            )

    # --- streams ----------------------------------------------------------------------

    async def StreamQuotes(
        self, request: marketdata_pb2.StreamQuotesRequest, context: Any
    ) -> AsyncIterator[marketdata_pb2.StreamQuotesResponse]:
        batches = self._sequenced("quotes", request.symbols, request.resume_after_sequence)
        async with aclosing(batches):
            async for quotes, position in batches:
                yield marketdata_pb2.StreamQuotesResponse(quotes=quotes, last_sequence=position)

    async def StreamTrades(
        self, request: marketdata_pb2.StreamTradesRequest, context: Any
    ) -> AsyncIterator[marketdata_pb2.StreamTradesResponse]:
        batches = self._sequenced("trades", request.symbols, request.resume_after_sequence)
        async with aclosing(batches):
            async for trades, position in batches:
                yield marketdata_pb2.StreamTradesResponse(trades=trades, last_sequence=position)

    async def _sequenced(
        self, kind: str, requested_symbols: Sequence[str], resume_after: int
    ) -> AsyncGenerator[tuple[Sequence[Any], int], None]:
        """Batches of the tick log `kind` (quotes or trades) after `resume_after`.

        An empty batch is a heartbeat carrying the subscriber's current position.
        """
        symbols = self.universe.resolve(requested_symbols)
        if resume_after < 0:
            raise InvalidArgument("resume_after_sequence must not be negative.")
        wake, ready = waker()
        log: Any = self.hub.quotes if kind == "quotes" else self.hub.trades
        subscription = log.subscribe(
            symbols=symbols or None, resume_after=resume_after, on_ready=ready
        )
        deliveries = serve(
            kind, subscription, wake, batch=self.stream_batch, heartbeat_s=self.heartbeat_s
        )
        async with aclosing(deliveries):
            async for delivery in deliveries:
                if delivery is None:
                    yield (), subscription.position
                else:
                    yield delivery.items, delivery.position

    async def StreamBars(
        self, request: marketdata_pb2.StreamBarsRequest, context: Any
    ) -> AsyncIterator[marketdata_pb2.StreamBarsResponse]:
        symbols = self.universe.resolve(request.symbols)
        timeframe = parse_timeframe(request.timeframe or "1Min")
        wake, ready = waker()
        # Subscribe before reading history, so no bar closes unseen in between.
        subscription = self.hub.bars.subscribe(
            symbols=symbols or None,
            predicate=lambda b: b.timeframe == timeframe.name,
            on_ready=ready,
        )
        caught_up: dict[str, int] = {}
        if request.HasField("resume_after"):
            try:
                async with self.pool.acquire() as conn:
                    history = await store.closed_bars_after(
                        conn,
                        symbols or None,
                        timeframe.name,
                        request.resume_after.ToNanoseconds(),
                        MAX_BAR_HISTORY,
                    )
            except BaseException:
                subscription.close()
                raise
            for bar in history:
                caught_up[bar.symbol] = max(caught_up.get(bar.symbol, 0), bar.start_ns)
            for page in split_batches(history, self.stream_batch):
                yield marketdata_pb2.StreamBarsResponse(bars=[bar_pb(b) for b in page])
        deliveries = serve(
            "bars", subscription, wake, batch=self.stream_batch, heartbeat_s=self.heartbeat_s
        )
        async with aclosing(deliveries):
            async for delivery in deliveries:
                if delivery is None:
                    yield marketdata_pb2.StreamBarsResponse()
                    continue
                fresh = [
                    b
                    for b in delivery.items
                    if b.start_time.ToNanoseconds() > caught_up.get(b.symbol, -1)
                ]
                if fresh:
                    yield marketdata_pb2.StreamBarsResponse(bars=fresh)


def _lookback(spec: indicators.IndicatorSpec) -> int:
    p = spec.params
    if spec.kind == "macd":
        return int(max(p[0], p[1]) + p[2])
    if spec.kind == "imbalance":
        return 1
    return max(1, int(p[0]))


@dataclass(frozen=True)
class _OrderFlow:
    """Per bar: the sum of its quotes' OFI events and its last top-of-book imbalance."""

    ofi: np.ndarray
    imbalance: np.ndarray


def _compute(
    spec: indicators.IndicatorSpec,
    close: np.ndarray,
    volume: np.ndarray,
    vwap_price: np.ndarray,
    flow: _OrderFlow | None,
) -> dict[str, np.ndarray]:
    if spec.kind == "ofi":
        per_bar = flow.ofi if flow is not None else np.full(len(close), np.nan)
        window = int(spec.params[0])
        if window == 1:
            return {"ofi": per_bar}
        # Sum over `window` bars, NaN until a full window is available.
        sums = np.convolve(per_bar, np.ones(window))[: len(per_bar)]
        sums[: window - 1] = np.nan
        return {"ofi": sums}
    if spec.kind == "imbalance":
        return {"imbalance": flow.imbalance if flow is not None else np.full(len(close), np.nan)}
    return indicators.compute(spec, close=close, volume=volume, vwap_price=vwap_price)


def _quotes_per_bar(
    rows: Sequence[asyncpg.Record], bars: Sequence[Bar], timeframe: Timeframe
) -> _OrderFlow:
    """Each bar's order-flow imbalance (sum over its quotes) and last top-of-book imbalance."""
    n = len(bars)
    ofi = np.full(n, np.nan)
    imbalance = np.full(n, np.nan)
    if rows:
        frame = pl.DataFrame(
            [tuple(r) for r in rows],
            schema=["ts_ns", "bid", "bid_size", "ask", "ask_size"],
            orient="row",
        )
        events = kernels.order_flow_imbalance(
            frame["bid"].to_numpy(),
            frame["bid_size"].to_numpy(),
            frame["ask"].to_numpy(),
            frame["ask_size"].to_numpy(),
        )
        book = kernels.book_imbalance(frame["bid_size"].to_numpy(), frame["ask_size"].to_numpy())
        per_bucket = (
            frame.with_columns(
                (pl.col("ts_ns") - pl.col("ts_ns") % timeframe.ns).alias("start_ns"),
                pl.Series("ofi", events).fill_nan(0.0),
                pl.Series("book", book),
            )
            .group_by("start_ns", maintain_order=True)
            .agg(pl.col("ofi").sum(), pl.col("book").last())
        )
        index = {bar.start_ns: i for i, bar in enumerate(bars)}
        for start, bucket_ofi, bucket_book in per_bucket.iter_rows():
            i = index.get(bucket_start(start, timeframe))
            if i is not None:
                ofi[i] = bucket_ofi
                imbalance[i] = bucket_book if bucket_book is not None else math.nan
    return _OrderFlow(ofi, imbalance)


def _parquet(rows: Sequence[asyncpg.Record]) -> bytes:
    frame = pl.DataFrame(
        {name: [r[name] for r in rows] for name in TRADE_BAR_SCHEMA}, schema=TRADE_BAR_SCHEMA
    )
    frame = frame.select(
        "symbol",
        (pl.col("start_ns") // 1000).cast(pl.Datetime("us", "UTC")).alias("start_time"),
        "open",
        "high",
        "low",
        "close",
        "volume",
        pl.when(pl.col("volume") > 0)
        .then(pl.col("notional") / pl.col("volume"))
        .otherwise(pl.col("close"))
        .alias("vwap"),
        "trade_count",
    )
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()
