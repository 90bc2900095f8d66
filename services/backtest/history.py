"""Bars from the market data service over gRPC (never its tables), as the engine reads them.

ExportBars sends one Parquet file in chunks; it becomes a Polars frame with the
library's columns (`symbol, timestamp, open, high, low, close, volume`), oldest
first. Market data's answers map to ours:
what it refuses as bad input is bad input here too; its absence is UNAVAILABLE.
"""

from __future__ import annotations

import io

import grpc
import polars as pl

from cift.marketdata.v1 import marketdata_pb2, marketdata_pb2_grpc
from cift.runtime.clients import open_channel
from cift.runtime.errors import (
    DomainError,
    InvalidArgument,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from cift.runtime.timestamps import timestamp_of
from services.backtest.model import RunSpec

BAR_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
# An export is one request however large; allow for a few million rows.
EXPORT_TIMEOUT_S = 120.0


def _mapped(error: grpc.aio.AioRpcError) -> DomainError:
    details = error.details() or ""
    code = error.code()
    if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND):
        return InvalidArgument(f"Market data refused the bars: {details}")
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return PermissionDenied(details)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return Unauthenticated(details)
    return Unavailable(f"Market data could not send the bars ({code.name}); retry shortly.")


def bars_frame(parquet: bytes) -> pl.DataFrame:
    """The exported Parquet as the engine's bars (with their symbol), oldest first."""
    exported = pl.read_parquet(io.BytesIO(parquet)) if parquet else pl.DataFrame()
    if exported.is_empty():
        return pl.DataFrame(
            schema={"symbol": pl.String, **{name: pl.Float64 for name in BAR_COLUMNS}}
        )
    return (
        exported.rename({"start_time": "timestamp"})
        .select("symbol", *BAR_COLUMNS)
        .sort("timestamp", "symbol")
    )


def check_coverage(bars: pl.DataFrame, spec: RunSpec) -> None:
    """Refuse a range with no bars, or with none of one of the symbols (the bars' own
    soundness is the engine's to judge)."""
    where = f"{spec.timeframe} bars from {spec.start.isoformat()} to {spec.end.isoformat()}"
    if bars.is_empty():
        raise InvalidArgument(
            f"Market data holds no {where} of {', '.join(spec.symbols)}: the range is empty; "
            "choose one with stored bars (GET /v1/bars/{symbol})."
        )
    present = set(bars.get_column("symbol").unique().to_list())
    missing = [symbol for symbol in spec.symbols if symbol not in present]
    if missing:
        raise InvalidArgument(f"Market data holds no {where} of {', '.join(missing)}.")


class MarketDataHistory:
    """ExportBars with the current caller's identity (forwarded by the channel)."""

    def __init__(self, address: str) -> None:
        self._channel = open_channel(address)
        self._stub = marketdata_pb2_grpc.MarketDataServiceStub(self._channel)

    async def load(self, spec: RunSpec) -> pl.DataFrame:
        request = marketdata_pb2.ExportBarsRequest(
            symbols=list(spec.symbols),
            timeframe=spec.timeframe,
            start=timestamp_of(spec.start),
            end=timestamp_of(spec.end),
        )
        chunks: list[bytes] = []
        try:
            async for response in self._stub.ExportBars(request, timeout=EXPORT_TIMEOUT_S):
                chunks.append(response.chunk)
        except grpc.aio.AioRpcError as error:
            raise _mapped(error) from None
        bars = bars_frame(b"".join(chunks))
        check_coverage(bars, spec)
        return bars

    async def close(self) -> None:
        await self._channel.close(None)
