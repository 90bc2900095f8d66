"""The broker's transactions against real PostgreSQL (the session's `infra` fixture).

Risk and market data are stand-ins speaking the same Python interface as the
gRPC clients (`upstream.py`): the point here is the broker's own logic, what
reaches the database, to the cent, under concurrency, duplicates and restarts,
with ticks and prices a test can script exactly. The same guarantees through the
real auth, risk and market data services are in test_execution_stack.py and
test_execution_restart.py. Ticks enter exactly as the
Kafka consumer hands them over (`cift.runtime.kafka.Event` with a `TickEvent`).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY

from cift.execution.v1 import events_pb2
from cift.risk.v1 import risk_pb2, rules_pb2
from cift.runtime import db
from cift.runtime.coalesce import Coalescer
from cift.runtime.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from cift.runtime.timestamps import to_ns
from cift.trading.fills import Fill, FillEngine
from cift.trading.orders import Order, OrderRequest, OrderStatus, ReplaceRequest
from cift.trading.vocabulary import Instrument, OrderType, Side, TimeInForce
from services.execution.adapters import orders_sql
from services.execution.adapters.risk_check import RiskCheck
from services.execution.adapters.sql_stores import SQL_STORES
from services.execution.app.broker import AccountSettings, Broker
from services.execution.app.entry_stages import SUBMIT_STAGES
from services.execution.app.journal import Filled
from services.execution.app.ports import MarketClock
from services.execution.app.store_ports import Stores
from tests.integration.execution.ticks import quote_event, trade_event

pytestmark = pytest.mark.integration

D = Decimal
OPENING = D(100000)
MIGRATIONS = Path(__file__).parents[3] / "services" / "execution" / "migrations"


class StandInMarket:
    """Any symbol is listed (whole shares, cent ticks) except those starting with UNKNOWN."""

    async def instrument(self, symbol: str) -> Instrument:
        if symbol.startswith("UNKNOWN"):
            raise InvalidArgument(f"Unknown symbol {symbol!r}: no instrument is listed under it.")
        return Instrument(symbol, D("0.01"), D(1), fractionable=False)

    async def latest_prices(
        self, symbols: list[str]
    ) -> dict[str, tuple[Decimal, Decimal, Decimal]]:
        return {}

    async def clock(self) -> MarketClock:
        return MarketClock(0, True, 0)

    async def previous_closes(self, symbols: list[str], day_start_ns: int) -> dict[str, Decimal]:
        return {}


class StandInRisk:
    def __init__(self) -> None:
        self.reject: tuple[int, str] | None = None
        self.checked = 0
        self.last: risk_pb2.CheckOrderRequest | None = None

    async def check(self, request: risk_pb2.CheckOrderRequest) -> risk_pb2.CheckOrderResponse:
        self.checked += 1
        self.last = request
        if self.reject is None:
            return risk_pb2.CheckOrderResponse(request_id=request.request_id, approved=True)
        code, message = self.reject
        return risk_pb2.CheckOrderResponse(
            request_id=request.request_id,
            approved=False,
            violations=[rules_pb2.Violation(reason_code=code, message=message)],  # type: ignore[arg-type]
        )


@pytest.fixture(scope="session")
async def pool(infra: Any) -> AsyncIterator[asyncpg.Pool]:
    await db.migrate_dsn(infra.database_url, "execution", db.load_migrations(MIGRATIONS))
    created = await db.create_pool(infra.database_url, "execution", min_size=2, max_size=12)
    yield created
    await created.close()


@pytest.fixture
def risk() -> StandInRisk:
    return StandInRisk()


@pytest.fixture
def broker(pool: asyncpg.Pool, risk: StandInRisk) -> Broker:
    return new_broker(pool, risk)


def new_broker(pool: asyncpg.Pool, risk: StandInRisk, stores: Stores = SQL_STORES) -> Broker:
    """A broker over the SQL stores, as the service wires it (a restart makes another)."""
    return Broker(
        pool,
        FillEngine(),
        StandInMarket(),
        RiskCheck(risk),
        AccountSettings(OPENING, D(1)),
        stores,
    )


@pytest.fixture
def account() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def symbol() -> str:
    """A fresh symbol per test: tick sequences and books never leak between tests."""
    return "T" + uuid.uuid4().hex[:8].upper()


def limit(symbol: str, side: Side, qty: str, price: str, **extra: Any) -> OrderRequest:
    return OrderRequest(
        symbol, side, OrderType.LIMIT, TimeInForce.GTC, qty=D(qty), limit_price=D(price), **extra
    )


async def account_row(pool: asyncpg.Pool, account_id: str) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM accounts WHERE account_id = $1", account_id)
    assert row is not None
    return row


async def order_count(pool: asyncpg.Pool, account_id: str) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM orders WHERE account_id = $1", account_id))


async def assert_ledger_balances(pool: asyncpg.Pool, account_id: str) -> None:
    """cash + positions at cost - realized P&L + commissions == opening cash, and the row agrees."""
    row = await account_row(pool, account_id)
    cost = await pool.fetchval(
        "SELECT coalesce(sum(cost_basis), 0) FROM positions WHERE account_id = $1", account_id
    )
    assert row["cash"] + cost - row["realized_pnl"] + row["commissions"] == OPENING
    assert row["net_cost"] == cost


async def test_submit_fill_position_account_to_the_cent(
    broker: Broker, pool: asyncpg.Pool, account: str, symbol: str
) -> None:
    order = await broker.submit(account, limit(symbol, Side.BUY, "10", "100.00"))
    assert order.status is OrderStatus.ACCEPTED
    row = await account_row(pool, account)
    assert row["reserved"] == D("1000.00")

    await broker.on_ticks([quote_event(symbol, "99.90", "99.95")])

    stored = await pool.fetchrow("SELECT * FROM orders WHERE order_id = $1", order.order_id)
    assert (stored["status"], stored["filled_qty"], stored["reserved"]) == ("filled", D(10), D(0))
    position = await pool.fetchrow("SELECT * FROM positions WHERE account_id = $1", account)
    assert (position["qty"], position["cost_basis"]) == (D(10), D("999.50"))
    row = await account_row(pool, account)
    assert (row["cash"], row["reserved"]) == (D("99000.50"), D(0))
    _, figures = await broker.account(account)
    assert figures.equity == D("99999.75")  # marked at the 99.925 midpoint
    activities = await pool.fetch(
        "SELECT activity_type, net_amount FROM activities WHERE account_id = $1 ORDER BY occurred_at",
        account,
    )
    assert [(a["activity_type"], a["net_amount"]) for a in activities] == [
        ("deposit", OPENING),
        ("fill", D("-999.50")),
    ]
    topics = await pool.fetch("SELECT topic FROM outbox WHERE key = $1", account)
    assert sorted(t["topic"] for t in topics) in (
        ["execution.fills.v1", "execution.orders.v1", "execution.orders.v1"],
        [],  # a relay running elsewhere may already have published them
    )
    await assert_ledger_balances(pool, account)


async def test_long_then_short_flip_realizes_pnl_in_the_database(
    broker: Broker, pool: asyncpg.Pool, account: str, symbol: str
) -> None:
    await broker.on_ticks([quote_event(symbol, "99.99", "100.00")])
    await broker.submit(
        account, OrderRequest(symbol, Side.BUY, OrderType.MARKET, TimeInForce.DAY, qty=D(10))
    )
    await broker.on_ticks([quote_event(symbol, "110.00", "110.01")])
    await broker.submit(
        account, OrderRequest(symbol, Side.SELL, OrderType.MARKET, TimeInForce.DAY, qty=D(25))
    )
    position = await pool.fetchrow("SELECT * FROM positions WHERE account_id = $1", account)
    assert (position["qty"], position["cost_basis"], position["realized_pnl"]) == (
        D(-15),
        D("-1650.00"),
        D("100.00"),
    )
    row = await account_row(pool, account)
    assert row["cash"] == OPENING - D("1000.00") + D("2750.00")
    await assert_ledger_balances(pool, account)


async def test_same_tick_delivered_twice_changes_nothing(
    broker: Broker, pool: asyncpg.Pool, account: str, symbol: str
) -> None:
    await broker.submit(account, limit(symbol, Side.BUY, "5", "50.00"))
    await broker.submit(account, limit(symbol, Side.BUY, "5", "50.00"))
    crossing = quote_event(symbol, "49.90", "50.00")
    await broker.on_ticks([crossing, crossing])
    await broker.on_ticks([crossing])
    fills = await pool.fetchval("SELECT count(*) FROM fills WHERE account_id = $1", account)
    assert fills == 2
    assert (await account_row(pool, account))["cash"] == OPENING - D(500)


async def test_same_fill_applied_twice_changes_nothing(
    broker: Broker, pool: asyncpg.Pool, account: str, symbol: str
) -> None:
    await broker.on_ticks([quote_event(symbol, "20.00", "20.01")])
    order = await broker.submit(
        account, OrderRequest(symbol, Side.BUY, OrderType.MARKET, TimeInForce.DAY, qty=D(3))
    )
    before = await account_row(pool, account)
    row = await pool.fetchrow("SELECT * FROM fills WHERE order_id = $1", order.order_id)
    replay = Fill(
        fill_id=row["fill_id"],
        order_id=order.order_id,
        account_id=account,
        symbol=symbol,
        side=Side.BUY,
        qty=row["qty"],
        price=row["price"],
        commission=row["commission"],
        ts_ns=1,
        order_status=OrderStatus.FILLED,
        order_filled_qty=D(3),
        order_filled_notional=D("60.03"),
        order_fill_count=1,
    )
    assert await broker.apply_fill(replay) is False
    after = await account_row(pool, account)
    assert (after["cash"], after["event_seq"]) == (before["cash"], before["event_seq"])


def stage_counts() -> dict[str, float]:
    return {
        stage: REGISTRY.get_sample_value(
            "cift_execution_submit_stage_seconds_count", {"stage": stage}
        )
        or 0.0
        for stage in SUBMIT_STAGES.stages
    }


async def test_each_stage_of_an_accepted_order_is_timed_once(
    broker: Broker, account: str, symbol: str
) -> None:
    await broker.submit(account, limit(symbol, Side.BUY, "1", "100.00"))  # the account opens
    before = stage_counts()

    await broker.submit(account, limit(symbol, Side.BUY, "1", "100.00"))

    after = stage_counts()
    stages = SUBMIT_STAGES.stages
    assert {stage: after[stage] - before[stage] for stage in stages} == dict.fromkeys(stages, 1)


async def test_fifty_concurrent_orders_of_ten_percent_each_accept_at_most_ten(
    broker: Broker, pool: asyncpg.Pool, account: str, symbol: str
) -> None:
    await broker.ensure_account(account)

    async def attempt() -> str:
        try:
            await broker.submit(account, limit(symbol, Side.BUY, "100", "100.00"))  # 10,000 each
        except FailedPrecondition as refused:
            assert refused.reason == "INSUFFICIENT_BUYING_POWER"
            return "refused"
        return "accepted"

    outcomes = await asyncio.gather(*(attempt() for _ in range(50)))
    assert outcomes.count("accepted") == 10
    row = await account_row(pool, account)
    assert row["reserved"] == OPENING
    assert await order_count(pool, account) == 10


async def test_cancel_releases_the_reservation_and_a_filled_order_cannot_be_canceled(
    broker: Broker, pool: asyncpg.Pool, account: str, symbol: str
) -> None:
    resting = await broker.submit(account, limit(symbol, Side.BUY, "10", "10.00"))
    canceled = await broker.cancel(account, resting.order_id)
    assert canceled.status is OrderStatus.CANCELED
    assert (await account_row(pool, account))["reserved"] == 0
    await broker.on_ticks([quote_event(symbol, "9.00", "9.50")])
    assert (
        await pool.fetchval("SELECT count(*) FROM fills WHERE order_id = $1", resting.order_id) == 0
    )

    filled = await broker.submit(account, limit(symbol, Side.BUY, "1", "10.00"))
    with pytest.raises(FailedPrecondition, match="is filled, so it cannot be canceled"):
        await broker.cancel(account, filled.order_id)


async def test_cancel_of_another_accounts_order_is_not_found(
    broker: Broker, account: str, symbol: str
) -> None:
    order = await broker.submit(account, limit(symbol, Side.BUY, "1", "10.00"))
    with pytest.raises(NotFound):
        await broker.cancel(str(uuid.uuid4()), order.order_id)
    with pytest.raises(NotFound):
        await broker.cancel(account, "not-a-uuid")


async def test_replace_marks_the_original_replaced_and_books_the_successor(
    broker: Broker, pool: asyncpg.Pool, account: str, symbol: str
) -> None:
    original = await broker.submit(account, limit(symbol, Side.BUY, "10", "10.00"))
    successor = await broker.replace(
        account, original.order_id, ReplaceRequest(limit_price=D("11.00"), qty=D(5))
    )
    rows = {
        r["order_id"]: r
        for r in await pool.fetch("SELECT * FROM orders WHERE account_id = $1", account)
    }
    assert rows[original.order_id]["status"] == "replaced"
    assert rows[original.order_id]["replaced_by"] == successor.order_id
    assert rows[successor.order_id]["replaces"] == original.order_id
    assert (await account_row(pool, account))["reserved"] == D("55.00")
    await broker.on_ticks([quote_event(symbol, "10.90", "11.00")])
    assert (
        await pool.fetchrow("SELECT status FROM orders WHERE order_id = $1", successor.order_id)
    )["status"] == "filled"
    with pytest.raises(FailedPrecondition, match="cannot be replaced"):
        await broker.replace(account, successor.order_id, ReplaceRequest(qty=D(1)))
    assert await order_count(pool, account) == 2


async def test_cancel_racing_a_fill_leaves_one_consistent_outcome(
    broker: Broker, pool: asyncpg.Pool, account: str, symbol: str
) -> None:
    orders = [
        await broker.submit(account, limit(symbol, Side.BUY, "1", "10.00")) for _ in range(10)
    ]

    async def cancel(order_id: str) -> None:
        with contextlib.suppress(FailedPrecondition):
            await broker.cancel(account, order_id)

    await asyncio.gather(
        broker.on_ticks([quote_event(symbol, "9.90", "10.00")]),
        *(cancel(o.order_id) for o in orders),
    )
    rows = await pool.fetch(
        "SELECT status, filled_qty, reserved FROM orders WHERE account_id = $1", account
    )
    assert {r["status"] for r in rows} <= {"filled", "canceled"}
    filled = sum(1 for r in rows if r["status"] == "filled")
    assert all(r["reserved"] == 0 for r in rows)
    position = await pool.fetchval(
        "SELECT coalesce(sum(qty), 0) FROM positions WHERE account_id = $1", account
    )
    assert position == filled
    assert (await account_row(pool, account))["reserved"] == 0
    await assert_ledger_balances(pool, account)


async def test_resting_orders_survive_a_restart_and_still_fill(
    pool: asyncpg.Pool, risk: StandInRisk, account: str, symbol: str
) -> None:
    first = new_broker(pool, risk)
    order = await first.submit(account, limit(symbol, Side.SELL, "4", "30.00"))
    restarted = new_broker(pool, risk)
    assert await restarted.reload() >= 1
    assert order.order_id in restarted.engine
    await restarted.on_ticks([quote_event(symbol, "30.05", "30.10")])
    row = await pool.fetchrow(
        "SELECT status, filled_qty FROM orders WHERE order_id = $1", order.order_id
    )
    assert (row["status"], row["filled_qty"]) == ("filled", D(4))
    assert (await account_row(pool, account))["cash"] == OPENING + D("120.20")


async def test_replayed_tick_after_restart_does_not_fill_again(
    pool: asyncpg.Pool, risk: StandInRisk, account: str, symbol: str
) -> None:
    first = new_broker(pool, risk)
    await first.submit(account, limit(symbol, Side.BUY, "2", "10.00"))
    await first.submit(account, limit(symbol, Side.BUY, "2", "10.00", client_order_id="second"))
    tick = quote_event(symbol, "9.00", "10.00")
    await first.on_ticks([tick])
    restarted = new_broker(pool, risk)
    await restarted.reload()
    third = await restarted.submit(
        account, limit(symbol, Side.BUY, "2", "10.00", client_order_id="third")
    )
    await restarted.on_ticks([tick])  # Kafka redelivers the tick after the restart
    row = await pool.fetchrow("SELECT status FROM orders WHERE order_id = $1", third.order_id)
    assert row["status"] == "accepted"


@pytest.mark.parametrize(
    ("request_fields", "error", "message"),
    [
        ({"symbol": "UNKNOWNX"}, InvalidArgument, "Unknown symbol"),
        ({"qty": D(0)}, InvalidArgument, "qty must be a positive number"),
        ({"qty": D(-3)}, InvalidArgument, "qty must be a positive number"),
        ({"qty": D("NaN")}, InvalidArgument, "qty must be a positive number"),
        ({"limit_price": None}, InvalidArgument, "limit_price is required"),
        ({"limit_price": D("10.001")}, InvalidArgument, "tick grid"),
        (
            {"qty": None, "notional": D(100)},
            InvalidArgument,
            "notional is only accepted for market orders",
        ),
    ],
)
async def test_bad_orders_are_refused_and_nothing_is_written(
    broker: Broker,
    pool: asyncpg.Pool,
    account: str,
    symbol: str,
    request_fields: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    fields: dict[str, Any] = {
        "symbol": symbol,
        "side": Side.BUY,
        "order_type": OrderType.LIMIT,
        "time_in_force": TimeInForce.DAY,
        "qty": D(1),
        "limit_price": D("10.00"),
    }
    fields.update(request_fields)
    with pytest.raises(error, match=message):
        await broker.submit(account, OrderRequest(**fields))
    assert await order_count(pool, account) == 0
    assert (await account_row(pool, account))["reserved"] == 0


async def test_risk_rejection_writes_nothing_and_carries_the_reason(
    broker: Broker, pool: asyncpg.Pool, risk: StandInRisk, account: str, symbol: str
) -> None:
    risk.reject = (rules_pb2.REASON_CODE_MAX_ORDER_QTY, "Order quantity exceeds the limit of 5.")
    with pytest.raises(FailedPrecondition, match="exceeds the limit") as refused:
        await broker.submit(account, limit(symbol, Side.BUY, "10", "10.00"))
    assert refused.value.reason == "MAX_ORDER_QTY"
    assert await order_count(pool, account) == 0


async def test_client_order_id_makes_submission_idempotent(
    broker: Broker, pool: asyncpg.Pool, risk: StandInRisk, account: str, symbol: str
) -> None:
    first = await broker.submit(
        account, limit(symbol, Side.BUY, "1", "10.00", client_order_id="mine-1")
    )
    again = await broker.submit(
        account, limit(symbol, Side.BUY, "1.0", "10.00", client_order_id="mine-1")
    )
    assert again.order_id == first.order_id
    with pytest.raises(AlreadyExists, match="already used"):
        await broker.submit(
            account, limit(symbol, Side.BUY, "2", "10.00", client_order_id="mine-1")
        )
    assert await order_count(pool, account) == 1
    assert risk.checked == 1


async def test_close_position_sends_an_opposite_market_order(
    broker: Broker, pool: asyncpg.Pool, account: str, symbol: str
) -> None:
    await broker.on_ticks([quote_event(symbol, "50.00", "50.02")])
    await broker.submit(
        account, OrderRequest(symbol, Side.BUY, OrderType.MARKET, TimeInForce.DAY, qty=D(8))
    )
    closing = await broker.close_position(account, symbol, None, D(50))
    assert (closing.side, closing.qty, closing.status) == (Side.SELL, D(4), OrderStatus.FILLED)
    assert await pool.fetchval("SELECT qty FROM positions WHERE account_id = $1", account) == D(4)
    with pytest.raises(NotFound):
        await broker.close_position(account, "NOPE", None, None)


async def test_reservations_keep_their_cents_through_submit_and_replace(
    broker: Broker, pool: asyncpg.Pool, account: str, symbol: str
) -> None:
    original = await broker.submit(account, limit(symbol, Side.BUY, "3", "100.33"))
    assert (await account_row(pool, account))["reserved"] == D("300.99")
    await broker.replace(account, original.order_id, ReplaceRequest(limit_price=D("100.37")))
    assert (await account_row(pool, account))["reserved"] == D("301.11")


async def test_submitted_order_event_carries_its_sequence_in_the_stored_and_outbox_bytes(
    broker: Broker, pool: asyncpg.Pool, account: str, symbol: str
) -> None:
    first = await broker.submit(account, limit(symbol, Side.BUY, "1", "10.00"))
    second = await broker.submit(account, limit(symbol, Side.BUY, "1", "10.00"))
    rows = await pool.fetch(
        "SELECT sequence, payload FROM order_events WHERE account_id = $1 ORDER BY sequence",
        account,
    )
    events = [events_pb2.OrderEvent.FromString(r["payload"]) for r in rows]
    assert [(e.sequence, e.order.id) for e in events] == [
        (1, first.order_id),
        (2, second.order_id),
    ]
    assert [r["sequence"] for r in rows] == [1, 2]
    assert all(e.type == events_pb2.ORDER_EVENT_TYPE_NEW for e in events)
    outbox = await pool.fetch(
        "SELECT payload, headers FROM outbox WHERE key = $1 AND topic = 'execution.orders.v1'",
        account,
    )
    assert sorted(bytes(r["payload"]) for r in outbox) == sorted(bytes(r["payload"]) for r in rows)


async def test_trailing_stop_water_mark_survives_a_restart_and_only_tightens(
    pool: asyncpg.Pool, risk: StandInRisk, account: str, symbol: str
) -> None:
    first = new_broker(pool, risk)
    await first.submit(account, limit(symbol, Side.BUY, "10", "100.00"))
    await first.on_ticks([quote_event(symbol, "99.90", "100.00")])  # long 10 @ 100
    stop = await first.submit(
        account,
        OrderRequest(
            symbol,
            Side.SELL,
            OrderType.TRAILING_STOP,
            TimeInForce.GTC,
            qty=D(10),
            trail_price=D("3.00"),
        ),
    )
    await first.on_ticks([trade_event(symbol, "100.00"), trade_event(symbol, "105.00")])
    assert await first.save_water_marks() == 1
    await first.on_ticks([trade_event(symbol, "104.00")])  # no new high: nothing to save
    assert await first.save_water_marks() == 0
    stored = await pool.fetchval("SELECT water_mark FROM orders WHERE order_id = $1", stop.order_id)
    assert stored == D("105.00")

    # A late batch carrying a looser mark cannot loosen the saved one.
    async with pool.acquire() as conn:
        await orders_sql.save_water_marks(conn, {stop.order_id: D("101.00")})
    assert (
        await pool.fetchval("SELECT water_mark FROM orders WHERE order_id = $1", stop.order_id)
    ) == D("105.00")

    # Restarted while the market fell to 102.50: the stop still stands at 105 - 3 = 102.
    second = new_broker(pool, risk)
    await second.on_ticks([quote_event(symbol, "102.45", "102.55")])
    await second.reload()
    await second.on_ticks([trade_event(symbol, "102.50")])
    assert (
        await pool.fetchval("SELECT triggered FROM orders WHERE order_id = $1", stop.order_id)
    ) is False
    await second.on_ticks([trade_event(symbol, "102.00"), quote_event(symbol, "101.95", "102.05")])
    row = await pool.fetchrow(
        "SELECT status, filled_qty FROM orders WHERE order_id = $1", stop.order_id
    )
    assert (row["status"], row["filled_qty"]) == ("filled", D(10))


async def test_an_order_written_for_a_caller_that_went_away_still_enters_the_book(
    pool: asyncpg.Pool, account: str, symbol: str
) -> None:
    class CallerGoesAway(StandInRisk):
        """Approves, then the caller is cancelled (a deadline, a disconnect)."""

        async def check(self, request: risk_pb2.CheckOrderRequest) -> risk_pb2.CheckOrderResponse:
            reply = await super().check(request)
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            return reply

    risk = StandInRisk()
    broker = new_broker(pool, risk)
    await broker.submit(account, limit(symbol, Side.BUY, "1", "10.00"))
    broker.risk = RiskCheck(CallerGoesAway())
    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(broker.submit(account, limit(symbol, Side.BUY, "2", "10.00")))
    for _ in range(100):
        if await order_count(pool, account) == 2 and len(broker.engine) >= 2:
            break
        await asyncio.sleep(0.02)
    rows = await pool.fetch("SELECT order_id FROM orders WHERE account_id = $1", account)
    assert len(rows) == 2
    assert all(r["order_id"] in broker.engine for r in rows)


def market(symbol: str, side: Side, qty: str) -> OrderRequest:
    return OrderRequest(symbol, side, OrderType.MARKET, TimeInForce.DAY, qty=D(qty))


async def test_concurrent_market_orders_of_many_accounts_fill_to_the_cent_in_shared_batches(
    broker: Broker, pool: asyncpg.Pool, symbol: str
) -> None:
    await broker.on_ticks([quote_event(symbol, "49.99", "50.01")])
    accounts = [str(uuid.uuid4()) for _ in range(20)]

    async def trade(account_id: str) -> None:
        await asyncio.gather(
            *(broker.submit(account_id, market(symbol, Side.BUY, "2")) for _ in range(3))
        )
        await broker.submit(account_id, market(symbol, Side.SELL, "1"))

    await asyncio.gather(*(trade(a) for a in accounts))

    assert broker.entry._bookings.batches < broker.entry._bookings.items  # orders shared lock holds
    for account_id in accounts:
        position = await pool.fetchrow(
            "SELECT * FROM positions WHERE account_id = $1 AND symbol = $2", account_id, symbol
        )
        assert (position["qty"], position["cost_basis"], position["realized_pnl"]) == (
            D(5),
            D("250.05"),
            D("-0.02"),
        )
        row = await account_row(pool, account_id)
        assert (row["cash"], row["reserved"], row["event_seq"]) == (D("99749.93"), D(0), 8)
        await assert_ledger_balances(pool, account_id)
        statuses = await pool.fetch(
            "SELECT status, filled_qty, reserved FROM orders WHERE account_id = $1", account_id
        )
        assert all(s["status"] == "filled" and s["reserved"] == 0 for s in statuses)
        assert sum(s["filled_qty"] for s in statuses) == D(7)
        rows = await pool.fetch(
            "SELECT sequence, payload FROM order_events WHERE account_id = $1 ORDER BY sequence",
            account_id,
        )
        events = [events_pb2.OrderEvent.FromString(r["payload"]) for r in rows]
        assert [r["sequence"] for r in rows] == list(range(1, 9))
        assert [e.sequence for e in events] == list(range(1, 9))
        kinds = [e.type for e in events]
        assert kinds.count(events_pb2.ORDER_EVENT_TYPE_NEW) == 4
        assert kinds.count(events_pb2.ORDER_EVENT_TYPE_FILL) == 4
        fills = await pool.fetchval(
            "SELECT count(*) FROM activities WHERE account_id = $1 AND activity_type = 'fill'",
            account_id,
        )
        assert fills == 4


async def test_an_order_whose_fill_cannot_be_written_fails_alone_and_its_batch_commits(
    pool: asyncpg.Pool, risk: StandInRisk, symbol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    doomed: set[str] = set()
    plugged = asyncio.Event()
    unplug = asyncio.Event()

    broker = new_broker(pool, risk)
    book_orders = broker.entry._book_orders
    apply_fill_on = broker.journal.apply_fill_on

    async def plugged_book_orders(orders: list[Order]) -> list[BaseException | Filled | None]:
        if not plugged.is_set():  # the first batch waits: the rest queue up behind it
            plugged.set()
            await unplug.wait()
        return await book_orders(orders)

    async def failing_apply_fill_on(
        conn: asyncpg.Connection, fill: Fill, tick_mark: tuple[str, int] | None
    ) -> Filled | None:
        written = await apply_fill_on(conn, fill, tick_mark)
        if fill.order_id in doomed:
            raise RuntimeError("the fill's write failed")
        return written

    monkeypatch.setattr(
        broker.entry,
        "_bookings",
        Coalescer(plugged_book_orders, name="booking", max_batch=256, max_in_flight=1),
    )
    monkeypatch.setattr(broker.journal, "apply_fill_on", failing_apply_fill_on)
    # The shared account's second order is in another symbol: one account's
    # entries for one symbol follow each other, so they never share a batch.
    second_symbol = symbol + "B"
    symbols = [symbol, second_symbol]
    await broker.on_ticks(
        [quote_event(symbol, "9.99", "10.01"), quote_event(second_symbol, "9.99", "10.01")]
    )
    plug, shared, other = (str(uuid.uuid4()) for _ in range(3))

    async def written(count: int) -> None:
        for _ in range(200):
            if (
                await pool.fetchval(
                    "SELECT count(*) FROM orders WHERE symbol = ANY($1::text[])", symbols
                )
                == count
            ):
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{count} orders were never written")

    first = asyncio.create_task(broker.submit(plug, market(symbol, Side.BUY, "1")))
    await asyncio.wait_for(plugged.wait(), 5)
    good = asyncio.create_task(broker.submit(shared, market(symbol, Side.BUY, "1")))
    await written(2)
    orders_before = {
        r["order_id"]
        for r in await pool.fetch(
            "SELECT order_id FROM orders WHERE symbol = ANY($1::text[])", symbols
        )
    }
    bad = asyncio.create_task(broker.submit(shared, market(second_symbol, Side.BUY, "2")))
    neighbour = asyncio.create_task(broker.submit(other, market(symbol, Side.BUY, "3")))
    await written(4)
    rows = await pool.fetch("SELECT order_id FROM orders WHERE account_id = $1 AND qty = 2", shared)
    doomed.update(r["order_id"] for r in rows)
    assert not doomed & orders_before
    unplug.set()

    await first
    await good
    await neighbour
    with pytest.raises(RuntimeError, match="the fill's write failed"):
        await bad
    assert broker.entry._bookings.batches == 2  # the plug alone, then the other three together

    filled = await pool.fetch(
        "SELECT account_id, qty, status FROM orders WHERE symbol = ANY($1::text[]) ORDER BY qty",
        symbols,
    )
    assert [(r["qty"], r["status"]) for r in filled] == [
        (D(1), "filled"),
        (D(1), "filled"),
        (D(2), "accepted"),
        (D(3), "filled"),
    ]
    row = await account_row(pool, shared)
    assert row["cash"] == OPENING - D("10.01")
    assert await pool.fetchval("SELECT count(*) FROM fills WHERE account_id = $1", shared) == 1
    for account_id in (plug, shared, other):
        await assert_ledger_balances(pool, account_id)


async def test_concurrent_sells_against_one_long_reserve_for_every_share_beyond_it(
    broker: Broker, pool: asyncpg.Pool, account: str, symbol: str
) -> None:
    """Only one of five concurrent 100-share sells may count the 100-share long as cover."""
    await broker.submit(account, limit(symbol, Side.BUY, "100", "50.00"))
    await broker.on_ticks([quote_event(symbol, "49.90", "50.00")])
    sells = await asyncio.gather(
        *(broker.submit(account, limit(symbol, Side.SELL, "100", "60.00")) for _ in range(5))
    )
    reservations = sorted(sell.reserved for sell in sells)
    assert reservations[0] == 0
    assert all(reserved > 0 for reserved in reservations[1:])
    assert (await account_row(pool, account))["reserved"] == sum(reservations)


async def test_open_orders_reach_risk_and_a_replaced_sell_does_not_count_against_its_successor(
    broker: Broker, pool: asyncpg.Pool, risk: StandInRisk, account: str, symbol: str
) -> None:
    await broker.submit(account, limit(symbol, Side.BUY, "100", "50.00"))
    await broker.on_ticks([quote_event(symbol, "49.90", "50.00")])
    await broker.submit(account, limit(symbol, Side.BUY, "5", "40.00"))
    closing = await broker.submit(account, limit(symbol, Side.SELL, "100", "60.00"))
    assert closing.reserved == 0
    assert risk.last is not None
    assert (risk.last.open_buy_qty, risk.last.open_sell_qty) == ("5", "0")
    assert risk.last.open_order_count == 1

    successor = await broker.replace(
        account, closing.order_id, ReplaceRequest(limit_price=D("61.00"))
    )
    assert successor.reserved == 0
    assert (risk.last.open_buy_qty, risk.last.open_sell_qty) == ("5", "0")
    assert risk.last.open_order_count == 1
    assert (await account_row(pool, account))["reserved"] == D("200.00")


class CountingPool:
    """The pool, with the start of every statement sent on its connections recorded.

    On the order path the round trips to PostgreSQL are the cost (bench/REPORT-execution.md),
    so how many an order takes is specified like its figures.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.statements: list[str] = []

    def _log(self, record: Any) -> None:
        self.statements.append(" ".join(record.query.split())[:40])

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._pool.acquire() as conn:
            conn.add_query_logger(self._log)
            try:
                yield conn
            finally:
                conn.remove_query_logger(self._log)


async def counted_broker(
    pool: asyncpg.Pool, risk: StandInRisk, symbol: str
) -> tuple[Broker, CountingPool]:
    """A broker whose statements are counted, with `symbol` quoted 49.99 / 50.01."""
    counting = CountingPool(pool)
    broker = new_broker(counting, risk)  # type: ignore[arg-type]
    await broker.on_ticks([quote_event(symbol, "49.99", "50.01")])
    return broker, counting


async def test_a_market_order_and_its_fill_take_three_statements_and_reply_as_stored(
    pool: asyncpg.Pool, risk: StandInRisk, account: str, symbol: str
) -> None:
    broker, counting = await counted_broker(pool, risk, symbol)
    # The first order opens the account and saves the instrument: once per account.
    await broker.submit(account, market(symbol, Side.BUY, "2"))
    counting.statements.clear()

    placed = await broker.place(account, market(symbol, Side.SELL, "1"))

    # The context read, the submit write, and the fill with everything it changes,
    # settled from the figures the entry read: no transaction, nothing read back.
    assert len(counting.statements) == 3, counting.statements
    assert "BEGIN;" not in counting.statements
    stored = await pool.fetchrow("SELECT * FROM orders WHERE order_id = $1", placed.order.order_id)
    assert (stored["status"], stored["filled_qty"]) == ("filled", 1)
    completed = placed.completed
    assert completed is not None
    assert completed.order.status is OrderStatus.FILLED
    assert (completed.order.filled_qty, completed.order.filled_avg_price) == (D(1), D("49.99"))
    assert (completed.order.reserved, stored["reserved"]) == (D(0), D(0))
    assert completed.commission == stored["commission"]
    # The row keeps microseconds.
    assert to_ns(stored["filled_at"]) == completed.order.updated_ns // 1000 * 1000
    position = await pool.fetchrow(
        "SELECT qty, cost_basis FROM positions WHERE account_id = $1 AND symbol = $2",
        account,
        symbol,
    )
    assert (position["qty"], position["cost_basis"]) == (D(1), D("50.01"))
    row = await account_row(pool, account)
    assert (row["cash"], row["reserved"], row["event_seq"]) == (D("99949.97"), D(0), 4)
    await assert_ledger_balances(pool, account)


async def test_a_fill_whose_account_moved_after_its_entry_read_is_booked_from_the_rows(
    pool: asyncpg.Pool, risk: StandInRisk, account: str, symbol: str
) -> None:
    broker, counting = await counted_broker(pool, risk, symbol)
    resting = await broker.submit(account, limit(symbol, Side.BUY, "1", "49.00"))
    write = broker.entry._statements.write

    async def write_then_fill_the_resting_order(order: Order, sequence: int) -> Any:
        written = await write(order, sequence)
        # After the market order's entry read the account: cash, position and the
        # event sequence all move before its fill is booked.
        await broker.on_ticks([quote_event(symbol, "48.99", "49.00")])
        return written

    broker.entry._statements.write = write_then_fill_the_resting_order  # type: ignore[method-assign]
    counting.statements.clear()

    placed = await broker.place(account, market(symbol, Side.BUY, "1"))

    assert "BEGIN;" in counting.statements  # the one statement wrote nothing; taken anew
    assert placed.completed is not None
    assert placed.completed.order.filled_avg_price == D("49.00")
    statuses = await pool.fetch(
        "SELECT order_id, status, reserved FROM orders WHERE account_id = $1", account
    )
    assert {(r["order_id"], r["status"], r["reserved"]) for r in statuses} == {
        (resting.order_id, "filled", D(0)),
        (placed.order.order_id, "filled", D(0)),
    }
    position = await pool.fetchrow(
        "SELECT qty, cost_basis FROM positions WHERE account_id = $1 AND symbol = $2",
        account,
        symbol,
    )
    assert (position["qty"], position["cost_basis"]) == (D(2), D("98.00"))
    assert await pool.fetchval("SELECT count(*) FROM fills WHERE account_id = $1", account) == 2
    row = await account_row(pool, account)
    assert (row["cash"], row["reserved"], row["event_seq"]) == (D("99902.00"), D(0), 4)
    sequences = await pool.fetch(
        "SELECT sequence, payload FROM order_events WHERE account_id = $1 ORDER BY sequence",
        account,
    )
    assert [r["sequence"] for r in sequences] == [1, 2, 3, 4]
    assert [events_pb2.OrderEvent.FromString(r["payload"]).sequence for r in sequences] == [
        1,
        2,
        3,
        4,
    ]
    await assert_ledger_balances(pool, account)
