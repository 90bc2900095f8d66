"""The runtime's instrument cache against a real grpc.aio server playing market data."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest

from cift.marketdata.v1 import marketdata_pb2, marketdata_pb2_grpc
from cift.runtime.instruments import InstrumentCache


class Listing(marketdata_pb2_grpc.MarketDataServiceServicer):
    """Answers GetInstrument from `tick_sizes`; `failures` are answered first, one per call."""

    def __init__(self) -> None:
        self.tick_sizes = {"AAPL": "0.01"}
        self.failures: list[grpc.StatusCode] = []
        self.calls = 0

    async def GetInstrument(
        self, request: marketdata_pb2.GetInstrumentRequest, context: Any
    ) -> marketdata_pb2.GetInstrumentResponse:
        self.calls += 1
        if self.failures:
            await context.abort(self.failures.pop(0), "market data is having a moment")
        if request.symbol not in self.tick_sizes:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"{request.symbol} is not listed")
        return marketdata_pb2.GetInstrumentResponse(
            instrument=marketdata_pb2.Instrument(
                symbol=request.symbol, tick_size=self.tick_sizes[request.symbol]
            )
        )


class Clock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def tick_size(message: marketdata_pb2.Instrument) -> str:
    return message.tick_size


@pytest.fixture
async def channel() -> AsyncIterator[tuple[Listing, grpc.aio.Channel]]:
    listing = Listing()
    server = grpc.aio.server()
    marketdata_pb2_grpc.add_MarketDataServiceServicer_to_server(listing, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as client:
        yield listing, client
    await server.stop(0)


async def lookups_until(
    get: Callable[[], Awaitable[str | None]], expected: str
) -> list[str | None]:
    """Every answer `get` gives until a background refresh lands `expected`."""
    seen = [await get()]
    while seen[-1] != expected and len(seen) < 400:
        await asyncio.sleep(0.005)
        seen.append(await get())
    assert seen[-1] == expected
    return seen


async def expired_after_relisting(
    listing: Listing, client: grpc.aio.Channel
) -> InstrumentCache[str]:
    """A cache that saw AAPL at 0.01, whose entry has expired since AAPL moved to 0.05."""
    clock = Clock()
    cache = InstrumentCache(client, tick_size, ttl_s=10, clock=clock)
    await cache.get("AAPL")
    listing.tick_sizes["AAPL"] = "0.05"
    clock.now_s = 11.0
    return cache


async def test_concurrent_first_lookups_share_one_call(
    channel: tuple[Listing, grpc.aio.Channel],
) -> None:
    listing, client = channel
    cache = InstrumentCache(client, tick_size, ttl_s=60, clock=Clock())
    assert await asyncio.gather(*(cache.get("AAPL") for _ in range(5))) == ["0.01"] * 5
    assert await cache.get("AAPL") == "0.01"
    assert listing.calls == 1


async def test_unknown_symbol_is_remembered_as_unknown(
    channel: tuple[Listing, grpc.aio.Channel],
) -> None:
    listing, client = channel
    cache = InstrumentCache(client, tick_size, ttl_s=60, clock=Clock())
    assert await cache.get("NOPE") is None
    assert await cache.get("NOPE") is None
    assert listing.calls == 1


async def test_expired_instrument_is_served_while_it_refreshes(
    channel: tuple[Listing, grpc.aio.Channel],
) -> None:
    listing, client = channel
    cache = await expired_after_relisting(listing, client)
    seen = await lookups_until(lambda: cache.get("AAPL"), "0.05")
    assert seen[0] == "0.01"
    assert listing.calls == 2


async def test_failed_refresh_keeps_the_old_instrument_and_retries_next_lookup(
    channel: tuple[Listing, grpc.aio.Channel],
) -> None:
    listing, client = channel
    cache = await expired_after_relisting(listing, client)
    listing.failures = [grpc.StatusCode.UNAVAILABLE]
    seen = await lookups_until(lambda: cache.get("AAPL"), "0.05")
    assert set(seen) == {"0.01", "0.05"}  # served the old answer, never raised
    assert listing.calls == 3  # first answer, failed refresh, the retry


async def test_failed_first_lookup_raises_and_is_retried_next_time(
    channel: tuple[Listing, grpc.aio.Channel],
) -> None:
    listing, client = channel
    cache = InstrumentCache(client, tick_size, ttl_s=60, clock=Clock())
    listing.failures = [grpc.StatusCode.UNAVAILABLE]
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await cache.get("AAPL")
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    assert await cache.get("AAPL") == "0.01"
    assert listing.calls == 2
