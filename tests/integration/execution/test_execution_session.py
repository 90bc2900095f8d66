"""The session clock (day orders expire at the close), equity snapshots, portfolio history,
and positions' figures since the previous close.

The broker runs against real PostgreSQL (the session's `infra`); the market clock
is a stand-in whose close the test chooses, since waiting for a real session
close is not an option. GetPortfolioHistory and GetPosition are called on the
servicer as the runtime's interceptor would: with the caller's verified identity bound.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from cift.execution.v1 import events_pb2, execution_pb2
from cift.risk.v1 import risk_pb2
from cift.runtime import db
from cift.runtime.errors import InvalidArgument, PermissionDenied, Unavailable
from cift.runtime.identity import Identity, acting_as
from cift.trading.fills import FillEngine, SessionPhase
from cift.trading.order_classes import ClassedRequest
from cift.trading.orders import OrderRequest
from cift.trading.vocabulary import Instrument, OrderType, Side, TimeInForce
from services.execution.__main__ import watch_session
from services.execution.adapters import history_sql
from services.execution.adapters.risk_check import RiskCheck
from services.execution.adapters.sql_stores import SQL_STORES
from services.execution.app.broker import AccountSettings, Broker
from services.execution.app.ports import MarketClock
from services.execution.server import ExecutionServicer
from tests.integration.execution.ticks import quote_event

pytestmark = pytest.mark.integration

D = Decimal
MIGRATIONS = Path(__file__).parents[3] / "services" / "execution" / "migrations"


class ClockedMarket:
    """Any symbol is listed; the session closes at `close_ns` (never when None).

    `closes` are the previous session's closes of the symbols that have one.
    """

    def __init__(
        self,
        close_ns: int | None,
        closes: dict[str, Decimal] | None = None,
        offset_ns: int = 0,
    ) -> None:
        self.close_ns = close_ns
        self.closes = closes or {}
        self.offset_ns = offset_ns  # the market clock's lead over this host's (a replay's)

    async def instrument(self, symbol: str) -> Instrument:
        return Instrument(symbol, D("0.01"), D(1), fractionable=False)

    async def latest_prices(
        self, symbols: list[str]
    ) -> dict[str, tuple[Decimal, Decimal, Decimal]]:
        return {}

    async def clock(self) -> MarketClock:
        now = time.time_ns() + self.offset_ns
        is_open = self.close_ns is None or now < self.close_ns
        return MarketClock(now, is_open, self.close_ns)

    async def previous_closes(self, symbols: list[str], day_start_ns: int) -> dict[str, Decimal]:
        return {s: self.closes[s] for s in symbols if s in self.closes}


class Approve:
    async def check(self, request: risk_pb2.CheckOrderRequest) -> risk_pb2.CheckOrderResponse:
        return risk_pb2.CheckOrderResponse(request_id=request.request_id, approved=True)


@pytest.fixture(scope="module")
async def pool(infra: Any) -> AsyncIterator[asyncpg.Pool]:
    schema = f"execution_session_{uuid.uuid4().hex[:8]}"
    await db.migrate_dsn(infra.database_url, schema, db.load_migrations(MIGRATIONS))
    created = await db.create_pool(infra.database_url, schema, min_size=1, max_size=4)
    yield created
    await created.close()


def broker_for(
    pool: asyncpg.Pool,
    close_in_s: float | None = 3600.0,
    closes: dict[str, Decimal] | None = None,
) -> Broker:
    """A broker whose session closes in `close_in_s` (never when None)."""
    close_ns = None if close_in_s is None else time.time_ns() + int(close_in_s * 1e9)
    return broker_on(pool, ClockedMarket(close_ns, closes))


def broker_on(
    pool: asyncpg.Pool, market: ClockedMarket, engine: FillEngine | None = None
) -> Broker:
    """A broker that approves every order, on `market`'s clock."""
    return Broker(
        pool,
        FillEngine() if engine is None else engine,
        market,
        RiskCheck(Approve()),
        AccountSettings(D(100000), D(1)),
        SQL_STORES,
    )


async def watch_until(
    broker: Broker, done: Callable[[], bool | Awaitable[bool]], failure: str
) -> None:
    """Run the session watcher until `done()`, with a regular poll far longer than the test.

    Only the watcher's first reading (and its retries) can get there, which is what
    these tests are about. A check of what is stored must await it: the engine changes
    before the journal has written, and the watcher is stopped once `done()` holds.
    """
    watcher = asyncio.create_task(watch_session(broker, 600))
    try:
        deadline = time.monotonic() + 10
        while not await _holds(done()):
            assert time.monotonic() < deadline, failure
            await asyncio.sleep(0.02)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


async def _holds(answer: bool | Awaitable[bool]) -> bool:
    return answer if isinstance(answer, bool) else await answer


async def stored_status(pool: asyncpg.Pool, order_id: str) -> str:
    status: str = await pool.fetchval("SELECT status FROM orders WHERE order_id = $1", order_id)
    return status


def limit(symbol: str, qty: str, price: str, tif: TimeInForce) -> OrderRequest:
    return OrderRequest(symbol, Side.BUY, OrderType.LIMIT, tif, qty=D(qty), limit_price=D(price))


async def account_value(pool: asyncpg.Pool, account: str, column: str) -> Decimal:
    value: Decimal = await pool.fetchval(
        f"SELECT {column} FROM accounts WHERE account_id = $1", account
    )
    return value


async def snapshot_count(pool: asyncpg.Pool, account: str) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM equity_snapshots WHERE account_id = $1", account
    )
    return count


async def test_session_close_expires_day_orders_and_keeps_good_til_canceled_ones(
    pool: asyncpg.Pool,
) -> None:
    broker = broker_for(pool, close_in_s=0.5)
    account = str(uuid.uuid4())
    day = await broker.submit(account, limit("SESS", "2", "10.25", TimeInForce.DAY))
    gtc = await broker.submit(account, limit("SESS", "3", "10.00", TimeInForce.GTC))
    opening_points = await snapshot_count(pool, account)  # the opening deposit's
    watcher = asyncio.create_task(watch_session(broker, 0.05))
    try:
        deadline = time.monotonic() + 10
        # The close expires day orders, then snapshots equity: wait for both.
        while await snapshot_count(pool, account) == opening_points:
            assert time.monotonic() < deadline, "the session close was not handled"
            await asyncio.sleep(0.05)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    rows = {
        r["order_id"]: r
        for r in await pool.fetch("SELECT * FROM orders WHERE account_id = $1", account)
    }
    assert rows[day.order_id]["expired_at"] is not None
    assert rows[day.order_id]["reserved"] == 0
    assert rows[gtc.order_id]["status"] == "accepted"
    assert await account_value(pool, account, "reserved") == D("30.00")
    payloads = await pool.fetch(
        "SELECT payload FROM order_events WHERE account_id = $1 ORDER BY sequence", account
    )
    kinds = [events_pb2.OrderEvent.FromString(p["payload"]).type for p in payloads]
    assert kinds[-1] == events_pb2.ORDER_EVENT_TYPE_EXPIRED
    # The close also records the equity the next day's P&L is measured from.
    assert await snapshot_count(pool, account) > opening_points
    assert await account_value(pool, account, "last_equity") == D(100000)
    assert day.order_id not in broker.engine and gtc.order_id in broker.engine


async def test_gtd_orders_expire_by_the_market_clock_not_this_hosts(pool: asyncpg.Pool) -> None:
    # A replay an hour behind the wall clock: expire_at is an instant on its clock.
    market = ClockedMarket(None, offset_ns=-3600 * 10**9)
    broker = broker_on(pool, market)
    account = str(uuid.uuid4())
    market_now = (await market.clock()).now_ns
    soon = dataclasses.replace(
        limit("SESG", "1", "10.00", TimeInForce.GTD), expire_ns=market_now + 300_000_000
    )
    later = dataclasses.replace(soon, expire_ns=market_now + 1800 * 10**9)
    assert soon.expire_ns is not None
    # Both dates are in the wall clock's past, in the market clock's future: accepted.
    # (Orders with session terms enter through the group entry, as the servicer routes them.)
    first = await broker.submit_group(account, ClassedRequest(soon))
    second = await broker.submit_group(account, ClassedRequest(later))
    with pytest.raises(InvalidArgument, match="future of the market clock"):
        past = dataclasses.replace(soon, expire_ns=market_now - 1_000_000_000)
        await broker.submit_group(account, ClassedRequest(past))
    watcher = asyncio.create_task(watch_session(broker, 0.02))
    try:
        deadline = time.monotonic() + 10
        while first.order_id in broker.engine:
            assert time.monotonic() < deadline, "the gtd order did not expire"
            await asyncio.sleep(0.02)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    rows = {
        r["order_id"]: r
        for r in await pool.fetch(
            "SELECT order_id, status, expired_at FROM orders WHERE account_id = $1", account
        )
    }
    assert rows[first.order_id]["status"] == "expired"
    expired_ns = int(rows[first.order_id]["expired_at"].timestamp() * 1e6) * 1000
    assert expired_ns >= soon.expire_ns - 1000  # a market instant (the row keeps microseconds)
    assert expired_ns < time.time_ns() - 1800 * 10**9  # not this host's
    # Half an hour on in market time: long past on the wall clock, yet still working.
    assert rows[second.order_id]["status"] == "accepted"
    assert second.order_id in broker.engine


class StartingMarket(ClockedMarket):
    """A market data service whose clock answers only from its `unavailable`-th call on."""

    def __init__(self, unavailable: int) -> None:
        super().__init__(None)
        self.unavailable = unavailable

    async def clock(self) -> MarketClock:
        if self.unavailable > 0:
            self.unavailable -= 1
            raise Unavailable("The market data service is unavailable right now.")
        return await super().clock()


async def test_the_watcher_retries_a_clock_it_never_read_soon_since_nothing_trades_until_then(
    pool: asyncpg.Pool,
) -> None:
    market = StartingMarket(unavailable=3)
    engine = FillEngine()
    engine.set_phase(SessionPhase.CLOSED)  # as the service starts it
    broker = broker_on(pool, market, engine)
    await watch_until(
        broker,
        lambda: engine.phase is SessionPhase.REGULAR,
        "the watcher did not retry the clock",
    )
    assert market.unavailable == 0


class ClosedSince(ClockedMarket):
    """A market that closed `since_s` ago and opens again in a day."""

    def __init__(self, since_s: float) -> None:
        super().__init__(None)
        self.since_ns = int(since_s * 1e9)

    async def clock(self) -> MarketClock:
        now = time.time_ns()
        day = 86_400 * 10**9
        return MarketClock(now, False, now + day, now + day - 3600 * 10**9, now - self.since_ns)


@pytest.mark.parametrize(
    ("since_s", "phase"),
    [(3600, SessionPhase.POST_MARKET), (5 * 3600, SessionPhase.CLOSED)],
)
async def test_a_watcher_started_after_the_close_knows_whether_its_post_market_runs(
    pool: asyncpg.Pool, since_s: float, phase: SessionPhase
) -> None:
    engine = FillEngine()
    engine.set_phase(SessionPhase.REGULAR)  # anything but the answer, to see it set
    broker = broker_on(pool, ClosedSince(since_s), engine)
    await watch_until(
        broker,
        lambda: engine.phase is not SessionPhase.REGULAR,
        "the watcher never read the clock",
    )
    assert engine.phase is phase


@pytest.mark.parametrize(("since_s", "extended_expires"), [(3600, False), (5 * 3600, True)])
async def test_a_restart_after_a_close_it_missed_expires_that_sessions_orders(
    pool: asyncpg.Pool, since_s: float, extended_expires: bool
) -> None:
    """Execution was down over yesterday's close: its day, opg and cls orders expire on
    the first clock reading; gtc ones and orders placed since the close stay."""
    before = broker_for(pool)
    account = str(uuid.uuid4())
    yesterday = {
        tif: await before.submit_group(account, ClassedRequest(limit("SESM", "1", "10.00", tif)))
        for tif in (TimeInForce.DAY, TimeInForce.GTC, TimeInForce.CLS)
    }
    extended = await before.submit_group(
        account,
        ClassedRequest(
            dataclasses.replace(limit("SESM", "1", "10.00", TimeInForce.DAY), extended_hours=True)
        ),
    )
    # They were placed a day ago, before the close the restarted process never saw.
    await pool.execute(
        "UPDATE orders SET created_at = created_at - interval '1 day' WHERE account_id = $1",
        account,
    )
    tonight = await before.submit(account, limit("SESM", "1", "10.00", TimeInForce.DAY))
    restarted = broker_on(pool, ClosedSince(since_s))
    await restarted.reload()

    # The expiries are written in one transaction: the day order's stored status says
    # all of them are (the engine drops them before that write).
    async def day_order_expired() -> bool:
        return await stored_status(pool, yesterday[TimeInForce.DAY].order_id) == "expired"

    await watch_until(
        restarted, day_order_expired, "the day order of the missed close never expired"
    )
    statuses = {
        r["order_id"]: (r["status"], r["reserved"], r["reason"])
        for r in await pool.fetch(
            "SELECT order_id, status, reserved, reason FROM orders WHERE account_id = $1",
            account,
        )
    }
    for tif in (TimeInForce.DAY, TimeInForce.CLS):
        status, reserved, reason = statuses[yesterday[tif].order_id]
        assert (status, reserved) == ("expired", 0)
        assert "while execution was down" in reason
    assert statuses[yesterday[TimeInForce.GTC].order_id][0] == "accepted"
    assert statuses[tonight.order_id][0] == "accepted"
    assert statuses[extended.order_id][0] == ("expired" if extended_expires else "accepted")
    working = {o.order_id for o in restarted.engine.open_orders()}
    assert working >= {yesterday[TimeInForce.GTC].order_id, tonight.order_id}
    assert await account_value(pool, account, "reserved") == sum(r[1] for r in statuses.values())


async def test_a_market_that_never_closes_never_expires_day_orders(pool: asyncpg.Pool) -> None:
    broker = broker_for(pool, close_in_s=None)
    account = str(uuid.uuid4())
    day = await broker.submit(account, limit("SESS", "2", "10.25", TimeInForce.DAY))
    opening_points = await snapshot_count(pool, account)
    watcher = asyncio.create_task(watch_session(broker, 0.02))
    try:
        await asyncio.sleep(0.5)  # 25 polls of a clock that has no next close
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    assert day.order_id in broker.engine
    row = await pool.fetchrow(
        "SELECT status, expired_at FROM orders WHERE order_id = $1", day.order_id
    )
    assert row is not None and row["status"] == "accepted" and row["expired_at"] is None
    # Nor did a phantom close snapshot equity.
    assert await snapshot_count(pool, account) == opening_points == 1


async def test_equity_snapshot_marks_positions_to_the_latest_quote(pool: asyncpg.Pool) -> None:
    broker = broker_for(pool)
    account = str(uuid.uuid4())
    await broker.submit(account, limit("EQTY", "10", "100.00", TimeInForce.GTC))
    await broker.on_ticks([quote_event("EQTY", "99.90", "100.00")])  # long 10 @ 100
    await broker.on_ticks([quote_event("EQTY", "109.90", "110.10")])  # marked at the mid, 110
    await broker.snapshot_equity()
    equity = await pool.fetchval(
        "SELECT equity FROM equity_snapshots WHERE account_id = $1 ORDER BY taken_at DESC LIMIT 1",
        account,
    )
    assert equity == D(99000) + 10 * D(110)


def owner(account: str) -> Identity:
    return Identity("user", account, frozenset({"read", "trade"}))


async def test_a_position_held_overnight_and_added_to_counts_each_part_from_its_own_price(
    pool: asyncpg.Pool,
) -> None:
    broker = broker_for(pool, closes={"OVNT": D(105)})
    account = str(uuid.uuid4())
    await broker.submit(account, limit("OVNT", "10", "100.00", TimeInForce.GTC))
    await broker.on_ticks([quote_event("OVNT", "99.90", "100.00")])  # long 10 @ 100
    # That fill was yesterday's: the 10 shares are held since before today's session.
    await pool.execute(
        "UPDATE activities SET occurred_at = occurred_at - interval '1 day' "
        "WHERE account_id = $1 AND activity_type = 'fill'",
        account,
    )
    await broker.on_ticks([quote_event("OVNT", "107.90", "108.00")])
    await broker.submit(account, limit("OVNT", "5", "108.00", TimeInForce.GTC))  # 5 @ 108 today
    await broker.on_ticks([quote_event("OVNT", "109.90", "110.10")])  # marked at 110
    with acting_as(owner(account)):
        reply = await ExecutionServicer(broker).GetPosition(
            execution_pb2.GetPositionRequest(symbol="OVNT"),
            None,  # type: ignore[arg-type]
        )
    position = reply.position
    assert (position.qty, position.current_price, position.unrealized_pl) == ("15", "110", "110")
    assert position.lastday_price == "105"
    assert position.change_today == "0.047619"  # 110 / 105 - 1
    # 10 x (110 - 105) since the close, plus 5 x 110 - 540 since today's purchase.
    assert position.unrealized_intraday_pl == "60"


async def history(
    broker: Broker, account: str, **fields: Any
) -> execution_pb2.GetPortfolioHistoryResponse:
    with acting_as(owner(account)):
        return await ExecutionServicer(broker).GetPortfolioHistory(
            execution_pb2.GetPortfolioHistoryRequest(**fields),
            None,  # type: ignore[arg-type]
        )


async def test_portfolio_history_keeps_the_last_snapshot_of_each_interval(
    pool: asyncpg.Pool,
) -> None:
    broker = broker_for(pool)
    account = str(uuid.uuid4())
    await broker.ensure_account(account)
    start = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    async with pool.acquire() as conn:
        await history_sql.insert_equity_snapshots(
            conn,
            [
                (account, start, D(100000)),
                (account, start + timedelta(seconds=20), D(100050)),  # same minute: superseded
                (account, start + timedelta(seconds=50), D(100100)),
                (account, start + timedelta(minutes=1, seconds=5), D(99900)),
                (account, start + timedelta(minutes=3), D(100250)),
            ],
        )
    end = start + timedelta(minutes=4)
    reply = await history(broker, account, period="1D", timeframe="1Min", end=_stamp(end))
    assert [t.ToDatetime(tzinfo=UTC) for t in reply.timestamps] == [
        start + timedelta(seconds=50),
        start + timedelta(minutes=1, seconds=5),
        start + timedelta(minutes=3),
    ]
    assert [D(e) for e in reply.equity] == [D(100100), D(99900), D(100250)]
    assert D(reply.base_value) == D(100100)
    assert [D(p) for p in reply.profit_loss] == [D(0), D(-200), D(150)]
    assert [D(p) for p in reply.profit_loss_pct] == [
        D(0),
        (D(-200) / D(100100)).quantize(D("0.000001")),
        (D(150) / D(100100)).quantize(D("0.000001")),
    ]
    assert reply.timeframe == "1Min"
    hourly = await history(broker, account, period="1D", timeframe="1Hour", end=_stamp(end))
    assert [D(e) for e in hourly.equity] == [D(100250)]
    # Outside the period: nothing.
    before = await history(broker, account, period="1D", end=_stamp(start - timedelta(days=2)))
    assert not before.equity and not before.base_value


async def test_portfolio_history_of_a_new_account_starts_at_its_opening_deposit(
    pool: asyncpg.Pool,
) -> None:
    broker = broker_for(pool)
    account = str(uuid.uuid4())
    opened_after = datetime.now(UTC)
    await broker.ensure_account(account)
    # Stored points only (an explicit end adds no live one), before any periodic snapshot.
    soon = _stamp(datetime.now(UTC) + timedelta(minutes=1))
    reply = await history(broker, account, end=soon)
    opening = broker.settings.opening_cash
    assert [D(e) for e in reply.equity] == [opening]
    assert D(reply.base_value) == opening
    assert [D(p) for p in reply.profit_loss] == [D(0)]
    assert reply.timestamps[0].ToDatetime(tzinfo=UTC) >= opened_after - timedelta(seconds=1)
    # Seeing the account again (another process, a restart) adds no second point.
    await broker_for(pool).ensure_account(account)
    assert [D(e) for e in (await history(broker, account, end=soon)).equity] == [opening]


async def test_portfolio_history_up_to_now_ends_at_the_equity_of_the_moment(
    pool: asyncpg.Pool,
) -> None:
    broker = broker_for(pool)
    account = str(uuid.uuid4())
    await broker.on_ticks([quote_event("LIVE", "49.90", "50.00")])
    await broker.submit(account, limit("LIVE", "10", "50.00", TimeInForce.GTC))  # fills at 50
    await broker.on_ticks([quote_event("LIVE", "54.90", "55.10")])
    _, figures = await broker.account(account)
    assert figures.equity != broker.settings.opening_cash  # the position is marked up
    before = datetime.now(UTC)
    reply = await history(broker, account, period="1D", timeframe="1Min")
    assert D(reply.equity[-1]) == figures.equity
    assert reply.timestamps[-1].ToDatetime(tzinfo=UTC) >= before - timedelta(seconds=1)
    # A history that ends in the past has no live point.
    earlier = await history(broker, account, period="1D", end=_stamp(before - timedelta(days=2)))
    assert not earlier.equity


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"period": "0D"}, "period"),
        ({"period": "1X"}, "period"),
        ({"period": "D"}, "period"),
        ({"period": "1D", "timeframe": "2Min"}, "timeframe"),
    ],
)
async def test_portfolio_history_refuses_bad_periods_and_timeframes(
    pool: asyncpg.Pool, fields: dict[str, str], fragment: str
) -> None:
    with pytest.raises(InvalidArgument, match=fragment):
        await history(broker_for(pool), str(uuid.uuid4()), **fields)


async def test_portfolio_history_of_another_account_is_refused(pool: asyncpg.Pool) -> None:
    with pytest.raises(PermissionDenied):
        await history(broker_for(pool), str(uuid.uuid4()), account_id=str(uuid.uuid4()))


def _stamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp
