"""What SQL stores rather than computes: the ledger's buying power and whole order events.

The account row keeps the buying power `cift.trading.ledger.buying_power` computed
at its last change, and the reservation only compares against it. Order events are
serialized whole in Python, their per-account sequence included; the submit
statement writes them only while the account's sequence is still the one they
were numbered after. Against real PostgreSQL, with the stand-ins of
test_execution_broker.py.
"""

from __future__ import annotations

import time
import uuid

import asyncpg
import pytest

from cift.execution.v1 import events_pb2
from cift.runtime.errors import FailedPrecondition
from cift.trading.fills import FillEngine
from cift.trading.ledger import buying_power
from cift.trading.orders import Order, OrderStatus, new_order
from cift.trading.vocabulary import Side
from services.execution.adapters import orders_sql
from services.execution.adapters.events import order_event_row
from services.execution.adapters.orders_sql import StaleSequence
from services.execution.adapters.risk_check import RiskCheck
from services.execution.adapters.sql_stores import SQL_STORES
from services.execution.app.broker import AccountSettings, Broker
from services.execution.app.ports import OrderEventKind
from tests.integration.execution.test_execution_broker import (
    OPENING,
    D,
    StandInMarket,
    StandInRisk,
    account,
    account_row,
    limit,
    market,
    order_count,
    pool,
    symbol,
)
from tests.integration.execution.ticks import quote_event

pytestmark = pytest.mark.integration

__all__ = ["account", "pool", "symbol"]


def margin_broker(pool: asyncpg.Pool, risk: StandInRisk | None = None) -> Broker:
    """A broker whose accounts trade on 2x margin, so buying power is not simply cash."""
    return Broker(
        pool,
        FillEngine(),
        StandInMarket(),
        RiskCheck(risk or StandInRisk()),
        AccountSettings(OPENING, D(2)),
        SQL_STORES,
    )


def ledger_figure(row: asyncpg.Record) -> D:
    return buying_power(row["cash"], row["net_cost"], row["gross_cost"], row["margin_multiplier"])


async def test_the_stored_buying_power_is_the_ledgers_figure_after_each_fill(
    pool: asyncpg.Pool, account: str, symbol: str
) -> None:
    broker = margin_broker(pool)
    await broker.on_ticks([quote_event(symbol, "50.00", "50.02")])
    await broker.submit(account, market(symbol, Side.BUY, "100"))
    long_row = await account_row(pool, account)
    assert long_row["buying_power"] == ledger_figure(long_row) == D("194998.00")
    await broker.submit(account, market(symbol, Side.SELL, "150"))
    short_row = await account_row(pool, account)
    assert short_row["gross_cost"] > 0 and short_row["net_cost"] < 0
    assert short_row["buying_power"] == ledger_figure(short_row)


async def test_an_account_opened_before_buying_power_was_stored_gets_it_at_restart(
    pool: asyncpg.Pool, account: str, symbol: str
) -> None:
    broker = margin_broker(pool)
    await broker.submit(account, limit(symbol, Side.BUY, "1", "10.00"))
    await pool.execute("UPDATE accounts SET buying_power = NULL WHERE account_id = $1", account)
    with pytest.raises(FailedPrecondition, match="Insufficient buying power"):
        await broker.submit(account, limit(symbol, Side.BUY, "1", "10.00"))
    await margin_broker(pool).reload()
    row = await account_row(pool, account)
    assert row["buying_power"] == ledger_figure(row) == OPENING * 2
    await broker.submit(account, limit(symbol, Side.BUY, "1", "10.00"))
    assert await order_count(pool, account) == 2


async def test_an_order_numbered_before_its_account_moved_on_is_renumbered_not_lost(
    pool: asyncpg.Pool, account: str, symbol: str
) -> None:
    """Between the figures read and the write, another event of the account commits."""

    class CancelsMeanwhile(StandInRisk):
        def __init__(self) -> None:
            super().__init__()
            self.to_cancel: str | None = None
            self.broker: Broker | None = None

        async def check(self, request: object) -> object:  # type: ignore[override]
            if self.to_cancel is not None and self.broker is not None:
                to_cancel, self.to_cancel = self.to_cancel, None
                await self.broker.cancel(account, to_cancel)
            return await super().check(request)  # type: ignore[arg-type]

    risk = CancelsMeanwhile()
    broker = margin_broker(pool, risk)
    risk.broker = broker
    first = await broker.submit(account, limit(symbol, Side.BUY, "1", "10.00"))
    risk.to_cancel = first.order_id
    second = await broker.submit(account, limit(symbol, Side.BUY, "2", "10.00"))
    assert second.status is OrderStatus.ACCEPTED
    rows = await pool.fetch(
        "SELECT sequence, payload FROM order_events WHERE account_id = $1 ORDER BY sequence",
        account,
    )
    events = [events_pb2.OrderEvent.FromString(r["payload"]) for r in rows]
    assert [r["sequence"] for r in rows] == [e.sequence for e in events] == [1, 2, 3]
    assert [(e.order.id, e.type) for e in events] == [
        (first.order_id, events_pb2.ORDER_EVENT_TYPE_NEW),
        (first.order_id, events_pb2.ORDER_EVENT_TYPE_CANCELED),
        (second.order_id, events_pb2.ORDER_EVENT_TYPE_NEW),
    ]
    assert (await account_row(pool, account))["reserved"] == D("20.00")


async def test_the_submit_statement_writes_nothing_for_a_stale_sequence_or_short_funds(
    pool: asyncpg.Pool, account: str, symbol: str
) -> None:
    broker = margin_broker(pool)
    placed = await broker.submit(account, limit(symbol, Side.BUY, "1", "10.00"))
    stale = await _fresh_order(broker, account, symbol, reserve=D(10))
    async with pool.acquire() as conn:
        outcome = await orders_sql.submit_orders(
            conn, [(stale, order_event_row(stale, OrderEventKind.NEW, 1))]
        )
        assert outcome == {stale.order_id: StaleSequence(2)}
        too_big = await _fresh_order(broker, account, symbol, reserve=OPENING * 3)
        outcome = await orders_sql.submit_orders(
            conn, [(too_big, order_event_row(too_big, OrderEventKind.NEW, 2))]
        )
        assert outcome == {too_big.order_id: None}
    assert await order_count(pool, account) == 1
    row = await account_row(pool, account)
    assert (row["event_seq"], row["reserved"]) == (1, placed.reserved)
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE key = $1", account) == 1
    assert (
        await pool.fetchval("SELECT count(*) FROM order_events WHERE account_id = $1", account) == 1
    )


async def _fresh_order(broker: Broker, account_id: str, symbol: str, *, reserve: D) -> Order:
    """An accepted order that was never written, holding `reserve` of buying power."""
    instrument = await broker.market.instrument(symbol)
    order = new_order(
        limit(symbol, Side.BUY, "1", "10.00"),
        instrument,
        order_id=str(uuid.uuid4()),
        account_id=account_id,
        now_ns=time.time_ns(),
    )
    order.reserve(reserve)
    order.accept(order.created_ns)
    return order
