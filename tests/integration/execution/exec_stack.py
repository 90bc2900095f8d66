"""Clients of the real services of the session's `stack` for the execution integration tests.

Users are registered and logged in through auth's gRPC API; their bearer tokens
reach execution, which forwards them to risk (each check carries its user's own
credential) and to market data. Ticks come from the market data simulator; a
test that needs a price the random walk will not give soon injects one quote on
`marketdata.ticks.v1` with a sequence above every published one, exactly as the
feed would (execution, risk and the market data ingest all take it in order).
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any, TypeVar

import asyncpg
import grpc
import pytest

from cift.auth.v1 import auth_pb2, auth_pb2_grpc
from cift.execution.v1 import execution_pb2, execution_pb2_grpc, orders_pb2
from cift.marketdata.v1 import events_pb2 as md_events
from cift.marketdata.v1 import marketdata_pb2, marketdata_pb2_grpc
from cift.risk.v1 import risk_pb2_grpc
from cift.runtime.kafka import TOPIC_TICKS, EventProducer
from cift.stack.launcher import StackInfo
from tests.cift_process import cift_command
from tests.integration.execution.ticks import quote_message

PASSWORD = "correct horse battery 9"
CENT = Decimal("0.01")
T = TypeVar("T")


@dataclass(frozen=True)
class Trader:
    user_id: str
    account_id: str
    token: str

    @property
    def auth(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)


@dataclass
class Mesh:
    """Stubs of the stack's services plus its database and broker."""

    info: StackInfo
    auth: auth_pb2_grpc.AuthServiceAsyncStub
    execution: execution_pb2_grpc.ExecutionServiceAsyncStub
    marketdata: marketdata_pb2_grpc.MarketDataServiceAsyncStub
    risk: risk_pb2_grpc.RiskServiceAsyncStub
    db: asyncpg.Pool
    producer: EventProducer

    async def trader(self) -> Trader:
        email = f"exec-{uuid.uuid4().hex[:12]}@example.com"
        user = (
            await self.auth.Register(
                auth_pb2.RegisterRequest(email=email, password=PASSWORD, display_name="Trader")
            )
        ).user
        login = await self.auth.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD))
        return Trader(user.id, user.account_id, login.access_token)

    async def admin(self) -> Trader:
        """A user with the admin scope, made as an operator makes one: `cift user create --admin`."""
        email = f"ops-{uuid.uuid4().hex[:12]}@example.com"
        create = await asyncio.create_subprocess_exec(
            cift_command(),
            *("user", "create", "--home", str(self.info.home), "--email", email, "--admin"),
            env={k: v for k, v in os.environ.items() if not k.startswith("CIFT_")},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await create.communicate(f"{PASSWORD}\n".encode())
        assert create.returncode == 0, out.decode()
        created = re.search(r"user id (\S+), account id (\S+)", out.decode())
        assert created is not None, out.decode()
        login = await self.auth.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD))
        return Trader(created[1], created[2], login.access_token)

    async def quote(self, trader: Trader, symbol: str) -> marketdata_pb2.Quote:
        async def fetch() -> marketdata_pb2.Quote | None:
            reply = await self.marketdata.GetLatestQuotes(
                marketdata_pb2.GetLatestQuotesRequest(symbols=[symbol]), metadata=trader.auth
            )
            return reply.quotes.get(symbol)

        return await eventually(fetch)

    async def inject_quote(self, symbol: str, bid: Decimal, ask: Decimal, sequence: int) -> None:
        quote = quote_message(symbol, bid, ask, sequence)
        quote.timestamp.GetCurrentTime()
        await self.producer.publish(
            TOPIC_TICKS, symbol, md_events.TickEvent(quote=quote), event_id=f"tick-{sequence}"
        )

    async def inject_trade(self, symbol: str, price: Decimal, sequence: int) -> None:
        """A print of 100 shares at `price`, published as the feed would."""
        trade = marketdata_pb2.Trade(symbol=symbol, price=float(price), size=100, sequence=sequence)
        trade.timestamp.GetCurrentTime()
        await self.producer.publish(
            TOPIC_TICKS, symbol, md_events.TickEvent(trade=trade), event_id=f"tick-{sequence}"
        )

    async def quote_until(
        self,
        trader: Trader,
        symbol: str,
        bid: Decimal,
        ask: Decimal,
        done: Callable[[], Awaitable[T | None]],
        *,
        resend_after_s: float = 3.0,
    ) -> tuple[T, list[int]]:
        """Inject a quote until `done` sees its outcome; that outcome, and every sequence sent.

        The injected tick's sequence is read from the stack's latest quotes, which lag the
        simulator when the machine is busy: a tick the simulator's sequence overtook is
        dropped by execution as one it has seen, so after `resend_after_s` without the
        outcome the quote is sent again with a fresh sequence.
        """
        sent: list[int] = []

        async def taken() -> T | None:
            sequence = await self.next_sequence(trader)
            sent.append(max([sequence, *(s + 1 for s in sent)]))
            await self.inject_quote(symbol, bid, ask, sent[-1])
            try:
                return await eventually(done, timeout_s=resend_after_s)
            except AssertionError:
                return None

        return await eventually(taken, interval_s=0), sent

    async def next_sequence(self, trader: Trader) -> int:
        """A tick sequence above every one published so far (the feed's are global)."""
        listed = await self.marketdata.ListInstruments(
            marketdata_pb2.ListInstrumentsRequest(), metadata=trader.auth
        )
        reply = await self.marketdata.GetLatestQuotes(
            marketdata_pb2.GetLatestQuotesRequest(symbols=[i.symbol for i in listed.instruments]),
            metadata=trader.auth,
        )
        return max(q.sequence for q in reply.quotes.values()) + 50

    async def submit(self, trader: Trader, **fields: Any) -> orders_pb2.Order:
        request = execution_pb2.SubmitOrderRequest(
            side=fields.pop("side", orders_pb2.ORDER_SIDE_BUY),
            type=fields.pop("type", orders_pb2.ORDER_TYPE_LIMIT),
            time_in_force=fields.pop("time_in_force", orders_pb2.TIME_IN_FORCE_GTC),
            **fields,
        )
        reply = await self.execution.SubmitOrder(request, metadata=trader.auth)
        return reply.order

    async def order(self, trader: Trader, order_id: str) -> orders_pb2.Order:
        reply = await self.execution.GetOrder(
            execution_pb2.GetOrderRequest(order_id=order_id), metadata=trader.auth
        )
        return reply.order

    async def account(self, trader: Trader) -> execution_pb2.Account:
        reply = await self.execution.GetAccount(
            execution_pb2.GetAccountRequest(), metadata=trader.auth
        )
        return reply.account

    async def orders(self, trader: Trader) -> list[orders_pb2.Order]:
        reply = await self.execution.ListOrders(
            execution_pb2.ListOrdersRequest(status="all", page_size=500), metadata=trader.auth
        )
        return list(reply.orders)

    async def settled(self, trader: Trader, order_id: str) -> orders_pb2.Order:
        """The order once it has left the book (filled, canceled, ...)."""

        async def closed() -> orders_pb2.Order | None:
            order = await self.order(trader, order_id)
            open_statuses = (
                orders_pb2.ORDER_STATUS_NEW,
                orders_pb2.ORDER_STATUS_ACCEPTED,
                orders_pb2.ORDER_STATUS_PARTIALLY_FILLED,
            )
            return None if order.status in open_statuses else order

        return await eventually(closed)


async def eventually(
    check: Callable[[], Awaitable[T | None]], timeout_s: float = 30.0, interval_s: float = 0.1
) -> T:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(interval_s)


async def rpc_error(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def price(value: float | Decimal, factor: str, *, up: bool = False) -> Decimal:
    """`value * factor` on the cent grid (rounded away from filling unless `up`)."""
    return (Decimal(repr(value)) * Decimal(factor)).quantize(CENT, ROUND_UP if up else ROUND_DOWN)


@asynccontextmanager
async def open_mesh(stack: StackInfo, client_id: str, pool_size: int) -> AsyncIterator[Mesh]:
    """Clients of every service of a running stack, closed again on leaving."""
    channels = {name: grpc.aio.insecure_channel(addr) for name, addr in stack.grpc_addrs.items()}
    pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=pool_size)
    producer = EventProducer(stack.kafka_bootstrap, client_id)
    await producer.start()
    try:
        yield Mesh(
            stack,
            auth_pb2_grpc.AuthServiceStub(channels["auth"]),
            execution_pb2_grpc.ExecutionServiceStub(channels["execution"]),
            marketdata_pb2_grpc.MarketDataServiceStub(channels["marketdata"]),
            risk_pb2_grpc.RiskServiceStub(channels["risk"]),
            pool,
            producer,
        )
    finally:
        await producer.stop()
        await pool.close()
        for channel in channels.values():
            await channel.close(None)


@pytest.fixture(scope="session")
async def mesh(stack: StackInfo) -> AsyncIterator[Mesh]:
    async with open_mesh(stack, "execution-tests", pool_size=4) as opened:
        yield opened
