"""The composition root of execution's use cases: one object the server calls.

It builds each use case with what it needs and forwards the server's calls to
the one that handles them; it holds no rules itself. Fill ids are deterministic
(`<order id>-<n>`), and a replayed tick is recognised by its per-symbol sequence,
kept durably with the fills it caused (`feed.py`, `journal.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from cift.trading.fills import Fill, FillEngine, SessionPhase
from cift.trading.intraday import TradingDay
from cift.trading.ledger import AccountFigures
from cift.trading.order_classes import ClassedRequest
from cift.trading.orders import Order, OrderRequest, ReplaceRequest
from services.execution.app.amend import OrderAmendments
from services.execution.app.close_position import close_position
from services.execution.app.entry import OrderEntry, Placed
from services.execution.app.feed import FeedIntake
from services.execution.app.group_entry import submit_group
from services.execution.app.journal import Journal
from services.execution.app.live import LiveBook
from services.execution.app.portfolio import Portfolio, PositionFigures
from services.execution.app.ports import AccountSettings, Market, Risk
from services.execution.app.pretrade import PreTrade
from services.execution.app.reads import Reads
from services.execution.app.restore import BookRestore
from services.execution.app.store_ports import Database, Row, Stores
from services.execution.app.subscriptions import Subscriptions

__all__ = ["AccountSettings", "Broker"]


class Broker:
    def __init__(
        self,
        pool: Database,
        engine: FillEngine,
        market: Market,
        risk: Risk,
        settings: AccountSettings,
        stores: Stores,
    ) -> None:
        self.pool = pool
        self.stores = stores
        self.engine = engine
        self.market = market
        self.settings = settings
        self.live = LiveBook(engine)
        self.subscriptions = Subscriptions()
        self.journal = Journal(pool, stores, self.live, self.subscriptions)
        self.pretrade = PreTrade(self.live, market, risk)
        self.entry = OrderEntry(
            pool,
            stores,
            self.live,
            market,
            self.pretrade,
            self.journal,
            self.subscriptions,
            settings,
        )
        self.amend = OrderAmendments(
            pool, stores, self.live, self.entry, self.journal, self.subscriptions
        )
        self.restore = BookRestore(pool, stores, self.live, market, self.journal)
        self.feed = FeedIntake(pool, stores, self.live, self.journal, self.restore)
        self.portfolio = Portfolio(pool, stores, self.live, market, self.entry)
        self.reads = Reads(pool, stores, self.amend)

    @property
    def risk(self) -> Risk:
        return self.pretrade.risk

    @risk.setter
    def risk(self, risk: Risk) -> None:
        """Swap the risk check (a test stands in a slow or failing one)."""
        self.pretrade.risk = risk

    # ---- order entry and amendments ----------------------------------------------

    async def ensure_account(self, account_id: str) -> None:
        await self.entry.ensure_account(account_id)

    async def submit(self, account_id: str, request: OrderRequest) -> Order:
        return await self.entry.submit(account_id, request)

    async def place(self, account_id: str, request: OrderRequest) -> Placed:
        return await self.entry.place(account_id, request)

    async def submit_group(self, account_id: str, request: ClassedRequest) -> Order:
        return await submit_group(self.entry, account_id, request)

    async def cancel(self, account_id: str, order_id: str, *, is_admin: bool = False) -> Order:
        return await self.amend.cancel(account_id, order_id, is_admin=is_admin)

    async def cancel_all(
        self, account_id: str, symbols: Sequence[str]
    ) -> list[tuple[str, Order | None, str]]:
        return await self.amend.cancel_all(account_id, symbols)

    async def replace(
        self, account_id: str, order_id: str, change: ReplaceRequest, *, is_admin: bool = False
    ) -> Order:
        return await self.amend.replace(account_id, order_id, change, is_admin=is_admin)

    async def close_position(
        self, account_id: str, symbol: str, qty: Decimal | None, percentage: Decimal | None
    ) -> Order:
        return await close_position(self.entry, self.amend, account_id, symbol, qty, percentage)

    # ---- the market feed -----------------------------------------------------------

    async def on_ticks(self, events: list[Any]) -> None:
        """A batch of the ticks topic's records, decoded by the feed's codec port first."""
        await self.feed.on_ticks(self.stores.decode_ticks(events))

    async def reload(self) -> int:
        return await self.feed.reload()

    async def run_repairs(self) -> None:
        await self.restore.run_repairs()

    async def save_water_marks(self) -> int:
        return await self.feed.save_water_marks()

    async def expire_day_orders(self, *, post_market: bool = False) -> int:
        return await self.feed.expire_day_orders(post_market=post_market)

    async def expire_missed_close(self, placed_before_ns: int, *, post_market_ended: bool) -> int:
        return await self.feed.expire_missed_close(
            placed_before_ns, post_market_ended=post_market_ended
        )

    async def open_session(self) -> None:
        await self.feed.open_session()

    async def set_phase(self, phase: SessionPhase) -> None:
        await self.feed.set_phase(phase)

    async def expire_due(self, market_now_ns: int) -> int:
        return await self.feed.expire_due(market_now_ns)

    async def apply_fill(self, fill: Fill, tick_mark: tuple[str, int] | None = None) -> bool:
        return await self.journal.apply_fill(fill, tick_mark)

    # ---- reads and subscriptions -------------------------------------------------

    async def account(self, account_id: str) -> tuple[Row, AccountFigures]:
        return await self.portfolio.account(account_id)

    async def marks(self, symbols: list[str]) -> dict[str, Decimal]:
        return await self.portfolio.marks(symbols)

    async def trading_day(self) -> TradingDay | None:
        return await self.portfolio.trading_day()

    async def previous_closes(self, symbols: list[str], day: TradingDay) -> dict[str, Decimal]:
        return await self.portfolio.previous_closes(symbols, day)

    async def positions(self, account_id: str, symbol: str | None) -> list[PositionFigures]:
        return await self.portfolio.positions(account_id, symbol)

    async def snapshot_equity(self, *, session_close: bool = False) -> int:
        return await self.portfolio.snapshot_equity(session_close=session_close)

    def subscribe(self, account_id: str) -> asyncio.Queue[bytes]:
        return self.subscriptions.subscribe(account_id)

    def unsubscribe(self, account_id: str, queue: asyncio.Queue[bytes]) -> None:
        self.subscriptions.unsubscribe(account_id, queue)
