"""Portfolio and account reads: marks, intraday figures, equity history.

Positions are valued at the engine's last price, else market data's latest; a
market data outage leaves figures at cost (or out), never fails the read.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from cift.runtime.errors import DomainError
from cift.runtime.timestamps import to_datetime
from cift.trading.intraday import DayFills, TradingDay, intraday_figures, trading_day
from cift.trading.ledger import (
    AccountFigures,
    Position,
    account_figures,
)
from cift.trading.money import to_ratio
from services.execution.app.entry import OrderEntry
from services.execution.app.live import LiveBook
from services.execution.app.ports import Market
from services.execution.app.store_ports import Database, Row, Stores

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PositionFigures:
    """One position valued now: what GetPosition and ListPositions report."""

    symbol: str
    qty: Decimal  # signed: negative is short
    qty_available: Decimal  # signed; not yet committed to open closing orders
    avg_entry_price: Decimal | None
    cost_basis: Decimal
    current_price: Decimal | None  # None without a mark: valued at cost
    market_value: Decimal
    lastday_price: Decimal | None
    change_today: Decimal | None
    unrealized_pl: Decimal
    unrealized_plpc: Decimal | None
    unrealized_intraday_pl: Decimal | None
    realized_pl: Decimal
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One interval of portfolio history: its last equity and the change since the first."""

    at: datetime
    equity: Decimal
    profit_loss: Decimal
    profit_loss_pct: Decimal  # a fraction, six decimals; 0 when the first equity is 0


class Portfolio:
    def __init__(
        self, pool: Database, stores: Stores, live: LiveBook, market: Market, entry: OrderEntry
    ) -> None:
        self.pool = pool
        self.stores = stores
        self.live = live
        self.market = market
        self.entry = entry
        self._trading_day: TradingDay | None = None

    async def marks(self, symbols: list[str]) -> dict[str, Decimal]:
        """The latest price per symbol: last trade, else the quote's midpoint."""
        marks: dict[str, Decimal] = {}
        missing: list[str] = []
        for symbol in symbols:
            bid, ask, last = self.live.engine.last_prices(symbol)
            if last:
                marks[symbol] = last
            elif bid and ask:
                marks[symbol] = (bid + ask) / 2
            else:
                missing.append(symbol)
        if missing:
            try:
                for symbol, (bid, ask, last) in (await self.market.latest_prices(missing)).items():
                    if last:
                        marks[symbol] = last
                    elif bid and ask:
                        marks[symbol] = (bid + ask) / 2
            except Exception:
                log.warning("latest prices unavailable; valuing positions at cost", exc_info=True)
        return marks

    async def trading_day(self) -> TradingDay | None:
        """The current trading day (intraday.py), asking the clock only when it may have rolled.

        None while the market clock is unavailable: intraday figures are then left out.
        """
        known = self._trading_day
        if known is not None and time.time_ns() < known.valid_until_ns:
            return known
        try:
            clock = await self.market.clock()
        except DomainError as exc:
            log.warning("market clock unavailable; intraday figures left out: %s", exc.message)
            return None
        self._trading_day = trading_day(
            now_ns=clock.now_ns,
            is_open=clock.is_open,
            next_open_ns=clock.next_open_ns,
            next_close_ns=clock.next_close_ns,
        )
        return self._trading_day

    async def previous_closes(self, symbols: list[str], day: TradingDay) -> dict[str, Decimal]:
        """Each symbol's close before `day`; empty (figures left out) when market data fails."""
        if not symbols:
            return {}
        try:
            return await self.market.previous_closes(symbols, day.start_ns)
        except DomainError as exc:
            log.warning("previous closes unavailable; intraday figures left out: %s", exc.message)
            return {}

    async def account(self, account_id: str) -> tuple[Row, AccountFigures]:
        await self.entry.ensure_account(account_id)
        async with self.pool.acquire() as conn:
            row = await self.stores.accounts.get_account(conn, account_id)
            rows = await self.stores.accounts.positions(conn, account_id)
        assert row is not None
        held = [Position(r["symbol"], r["qty"], r["cost_basis"]) for r in rows]
        marks = await self.marks([p.symbol for p in held])
        figures = account_figures(
            cash=row["cash"],
            positions=held,
            marks=marks,
            reserved=row["reserved"],
            realized_pnl=row["realized_pnl"],
            margin_multiplier=row["margin_multiplier"],
            last_equity=row["last_equity"],
        )
        return row, figures

    async def history(
        self, account_id: str, start: datetime, end: datetime, step_s: int, *, up_to_now: bool
    ) -> list[HistoryPoint]:
        """Equity per `step_s` interval from `start` to `end`: each interval's last snapshot.

        A history up to now ends at the equity GetAccount reports now, not at the
        last snapshot's (snapshots are minutes apart).
        """
        await self.entry.ensure_account(account_id)
        async with self.pool.acquire() as conn:
            rows = await self.stores.history.equity_history(conn, account_id, start, end)
        buckets: dict[int, tuple[datetime, Decimal]] = {}
        for row in rows:
            buckets[int(row["taken_at"].timestamp()) // step_s] = (row["taken_at"], row["equity"])
        if up_to_now:
            _, figures = await self.account(account_id)
            buckets[int(end.timestamp()) // step_s] = (end, figures.equity)
        points = [buckets[k] for k in sorted(buckets)]
        if not points:
            return []
        base = points[0][1]
        return [
            HistoryPoint(
                at,
                equity,
                equity - base,
                to_ratio((equity - base) / base) if base else Decimal(0),
            )
            for at, equity in points
        ]

    async def snapshot_equity(self, *, session_close: bool = False) -> int:
        """Record every account's marked equity (portfolio history); at the close also last_equity."""
        async with self.pool.acquire() as conn:
            rows = await self.stores.accounts.all_accounts_with_positions(conn)
        symbols = sorted({s for r in rows for s in r["symbols"]})
        marks = await self.marks(symbols)
        taken_at = datetime.now(UTC)
        snapshots: list[tuple[str, datetime, Decimal]] = []
        for r in rows:
            equity = r["cash"]
            for symbol, qty, cost in zip(r["symbols"], r["qtys"], r["costs"], strict=True):
                mark = marks.get(symbol)
                equity += cost if mark is None else Position(symbol, qty, cost).market_value(mark)
            snapshots.append((r["account_id"], taken_at, equity))
        async with self.pool.acquire() as conn, conn.transaction():
            await self.stores.history.insert_equity_snapshots(conn, snapshots)
            if session_close:
                await self.stores.history.set_last_equity(conn, [(a, e) for a, _, e in snapshots])
        return len(snapshots)

    async def positions(self, account_id: str, symbol: str | None) -> list[PositionFigures]:
        """The account's positions (or one symbol's) valued at the latest marks."""
        await self.entry.ensure_account(account_id)
        day = await self.trading_day()
        async with self.pool.acquire() as conn:
            rows = await self.stores.accounts.positions(conn, account_id)
            open_rows = await self.stores.orders.open_orders(conn, account_id)
            today = (
                await self.stores.fills.day_fills(conn, account_id, to_datetime(day.start_ns))
                if day is not None
                else {}
            )
        if symbol is not None:
            rows = [r for r in rows if r["symbol"] == symbol]
        symbols = [r["symbol"] for r in rows]
        marks = await self.marks(symbols)
        closes = await self.previous_closes(symbols, day) if day is not None else {}
        result = []
        for row in rows:
            held = Position(row["symbol"], row["qty"], row["cost_basis"])
            closing_side = "sell" if held.qty > 0 else "buy"
            committed = sum(
                (
                    (o["qty"] or 0) - o["filled_qty"]
                    for o in open_rows
                    if o["symbol"] == held.symbol and o["side"] == closing_side
                ),
                Decimal(0),
            )
            mark = marks.get(held.symbol)
            value = held.market_value(mark) if mark is not None else held.cost_basis
            unrealized = value - held.cost_basis
            intraday = intraday_figures(
                held, mark, closes.get(held.symbol), today.get(held.symbol, DayFills())
            )
            result.append(
                PositionFigures(
                    symbol=held.symbol,
                    qty=held.qty,
                    qty_available=max(Decimal(0), abs(held.qty) - committed)
                    * (1 if held.qty > 0 else -1),
                    avg_entry_price=held.avg_entry_price,
                    cost_basis=held.cost_basis,
                    current_price=mark,
                    market_value=value,
                    lastday_price=intraday.lastday_price,
                    change_today=intraday.change_today,
                    unrealized_pl=unrealized,
                    unrealized_plpc=to_ratio(unrealized / abs(held.cost_basis))
                    if held.cost_basis
                    else None,
                    unrealized_intraday_pl=intraday.unrealized_intraday_pl,
                    realized_pl=row["realized_pnl"],
                    updated_at=row["updated_at"],
                )
            )
        return result
