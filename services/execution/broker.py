"""The paper broker: the transactions that take an order or a fill through the database.

Each public method is one all-or-nothing unit: SubmitOrder (validate, risk check,
atomic buying-power reservation, persist with its outbox event), a fill (position,
cash, realized P&L, activity, order status, outbox; idempotent by fill id),
cancel and replace. The in-memory `FillEngine` and the database are kept in step
by one lock: every engine mutation and the persistence of what it produced happen
under it, so a cancel can never slip between a fill's decision and its commit.
Written orders enter the book in batches (group commit): one hold of the lock
books every order that arrived while the previous batch was committing, and
persists what they produced (a market order's fill) with one transaction per
account, the accounts' transactions running side by side.
The database commit of a new order happens outside the lock (that is what lets
submits run in parallel); an order canceled in that gap is remembered so it never
enters the book.

Fill ids are deterministic (`<order id>-<n>`), and a replayed tick is recognised by
its per-symbol sequence, kept durably with the fills it caused.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

import asyncpg

from cift.execution.v1 import events_pb2
from cift.marketdata.v1 import events_pb2 as md_events_pb2
from cift.risk.v1 import risk_pb2, rules_pb2
from cift.runtime import outbox
from cift.runtime.errors import DomainError, FailedPrecondition, NotFound, ResourceExhausted
from cift.runtime.kafka import TOPIC_FILLS, TOPIC_ORDERS, Event, encode_headers, new_event_id
from cift.runtime.money import format_decimal
from cift.runtime.order_wire import SIDE_TO_PB, TIF_TO_PB, TYPE_TO_PB
from cift.runtime.timestamps import now_ns, to_datetime
from cift.trading.fills import (
    EngineEvent,
    Fill,
    FillEngine,
    LegReleased,
    OpenOrders,
    OrderClosed,
    OrderTriggered,
    Quote,
)
from cift.trading.intraday import TradingDay, trading_day
from cift.trading.ledger import (
    AccountFigures,
    Position,
    account_figures,
    buying_power,
    released_reservation,
    reservation_for,
    reservation_price,
    settle_fill,
)
from cift.trading.orders import (
    Order,
    OrderClass,
    OrderRequest,
    OrderStatus,
    ReplaceRequest,
    build_replacement,
    new_order,
    resolve_resubmission,
)
from cift.trading.vocabulary import Instrument, OrderType, Side, TimeInForce
from services.execution import store
from services.execution.coalesce import Coalescer
from services.execution.events import (
    CLOSING_EVENT,
    dec,
    decode_tick,
    fill_message,
    order_event,
    order_message,
)
from services.execution.group_entry import reload_groups
from services.execution.keyed_locks import KeyedLocks
from services.execution.upstream import MarketClock

log = logging.getLogger(__name__)


class Market(Protocol):
    async def instrument(self, symbol: str) -> Instrument: ...

    async def latest_prices(
        self, symbols: list[str]
    ) -> dict[str, tuple[Decimal, Decimal, Decimal]]: ...

    async def clock(self) -> MarketClock: ...

    async def previous_closes(
        self, symbols: list[str], day_start_ns: int
    ) -> dict[str, Decimal]: ...


class Risk(Protocol):
    async def check(self, request: risk_pb2.CheckOrderRequest) -> risk_pb2.CheckOrderResponse: ...


@dataclass(frozen=True, slots=True)
class AccountSettings:
    opening_cash: Decimal
    margin_multiplier: Decimal


def _reason_name(code: int) -> str:
    return rules_pb2.ReasonCode.Name(code).removeprefix("REASON_CODE_")  # type: ignore[arg-type]


class Broker:
    def __init__(
        self,
        pool: asyncpg.Pool,
        engine: FillEngine,
        market: Market,
        risk: Risk,
        settings: AccountSettings,
    ) -> None:
        self.pool = pool
        self.engine = engine
        self.market = market
        self.risk = risk
        self.settings = settings
        self._lock = asyncio.Lock()
        # (account, symbol) from an entry's read of open orders until it is in the book.
        self._entries: KeyedLocks[tuple[str, str]] = KeyedLocks()
        self._known_accounts: set[str] = set()
        self._canceled_before_booked: set[str] = set()
        self._tick_marks: dict[str, int] = {}
        self._saved_instruments: dict[str, Instrument] = {}
        # Concurrent submits share their two statements (see coalesce.py); a write
        # batch holds one order per account, as its UPDATE changes each row once.
        # One batch in flight each: under load the next batch then gathers every
        # arrival of a whole round trip. Three in flight made batches of 1.5-1.9
        # orders instead of 1.9-3.9, which cost more CPU per order than they saved
        # in waiting (bench/REPORT-execution.md).
        self._contexts: Coalescer[tuple[str, str, str], asyncpg.Record] = Coalescer(
            self._read_contexts, name="context_read", max_batch=128, max_in_flight=1
        )
        self._writes: Coalescer[tuple[Order, store.OutgoingEvent], tuple[int, bytes] | None] = (
            Coalescer(
                self._write_orders,
                name="order_write",
                max_batch=128,
                max_in_flight=1,
                key=lambda item: item[0].account_id,
            )
        )
        # Orders written while a booking batch holds the lock wait to form the next one.
        self._bookings: Coalescer[Order, None] = Coalescer(
            self._book_orders, name="booking", max_batch=256, max_in_flight=1
        )
        self._subscribers: dict[str, set[asyncio.Queue[bytes]]] = defaultdict(set)
        self._trading_day: TradingDay | None = None

    # ---- accounts --------------------------------------------------------------

    async def ensure_account(self, account_id: str) -> None:
        """Open the paper account the first time an account id is seen (idempotent)."""
        if account_id in self._known_accounts:
            return
        async with self.pool.acquire() as conn:
            await store.open_account(
                conn, account_id, self.settings.opening_cash, self.settings.margin_multiplier
            )
        self._known_accounts.add(account_id)

    # ---- order entry -----------------------------------------------------------

    async def submit(self, account_id: str, request: OrderRequest) -> Order:
        """Validate, risk-check, then reserve and persist in one statement; all or nothing.

        Two database round trips in the common case: one read (account figures,
        the position and an earlier order under the same client id) and one write
        (`store.submit_order`). The risk check sits between them. Open orders
        come from the engine's memory; the account and symbol stay held until the
        order is in the book, so the next entry for them counts it.
        """
        await self.ensure_account(account_id)
        instrument = await self.market.instrument(request.symbol)
        if not request.client_order_id:
            request = dataclasses.replace(request, client_order_id=str(uuid.uuid4()))
        order = new_order(
            request, instrument, order_id=str(uuid.uuid4()), account_id=account_id, now_ns=now_ns()
        )
        release = await self._entries.acquire((account_id, request.symbol))
        handed_over = False
        try:
            open_orders = await self._open_orders(account_id, request.symbol)
            context = await self._contexts.submit(
                (account_id, request.symbol, request.client_order_id)
            )
            if context["existing_order_id"] is not None:
                async with self.pool.acquire() as conn:
                    return await self._resubmission(conn, account_id, request)
            order.reserve(await self._reservation(order, context, open_orders))
            await self._risk_check(order, context, open_orders)
            await self._book_instrument(instrument)
            order.accept(order.created_ns)
            message = order_event(
                event_id=new_event_id(),
                order=order_message(order),
                kind=events_pb2.ORDER_EVENT_TYPE_NEW,
                sequence=0,  # appended by the statement that hands it out
                ts_ns=order.created_ns,
            )
            # Once written, the order must reach the book even if this caller goes
            # away (deadline, disconnect): the write and the booking run as their own
            # task, and the entry stays held until that task is done.
            entry = asyncio.ensure_future(self._write_and_book(account_id, request, order, message))
            entry.add_done_callback(lambda _: release())
            handed_over = True
        finally:
            if not handed_over:
                release()
        return await asyncio.shield(entry)

    async def _open_orders(self, account_id: str, symbol: str, excluding: str = "") -> OpenOrders:
        """The engine's open orders, read before the database's position, never during a fill.

        The engine lock is held from a fill's decision to its commit; outside it
        the engine matches the committed ledger. Fills committed after this read
        and before the position is read only lower the position and the open
        quantity together, so the reservation can come out too high, never too low.
        """
        async with self._lock:
            return self.engine.open_orders_of(account_id, symbol, excluding=excluding)

    async def _write_and_book(
        self, account_id: str, request: OrderRequest, order: Order, message: events_pb2.OrderEvent
    ) -> Order:
        try:
            written = await self._writes.submit((order, _outgoing(message)))
        except asyncpg.UniqueViolationError:
            # The same client_order_id raced in from another call: answer as a resubmission.
            async with self.pool.acquire() as conn:
                return await self._resubmission(conn, account_id, request)
        if written is None:
            raise FailedPrecondition(
                f"Insufficient buying power: this order needs {format_decimal(order.reserved)}.",
                reason="INSUFFICIENT_BUYING_POWER",
            )
        self._notify(account_id, written[1])
        await self._bookings.submit(order)
        return order

    async def _book_orders(self, orders: list[Order]) -> list[BaseException | None]:
        """Put written orders in the book and persist what that produced, under one lock hold.

        The lock still spans every commit, so a cancel or a tick never slips between
        a fill's decision and its commit. An order's events concern only its own
        account; each account's share of the batch is one transaction, in arrival
        order, and the accounts' transactions run concurrently. Each transaction
        touches a single account row, as a lone fill does, so lock order against the
        multi-account submit statement is unchanged (no new deadlock).
        """
        results: list[BaseException | None] = [None] * len(orders)
        by_account: dict[str, list[tuple[int, list[EngineEvent]]]] = defaultdict(list)
        async with self._lock:
            for index, order in enumerate(orders):
                if order.order_id in self._canceled_before_booked:
                    self._canceled_before_booked.discard(order.order_id)
                    continue
                try:
                    produced = self.engine.add(order, now_ns())
                except Exception as refused:
                    results[index] = refused
                    continue
                if produced:
                    by_account[order.account_id].append((index, produced))
            await asyncio.gather(
                *(self._persist_account(items, results) for items in by_account.values())
            )
        return results

    async def _persist_account(
        self, items: list[tuple[int, list[EngineEvent]]], results: list[BaseException | None]
    ) -> None:
        """One account's share of a booking batch in one transaction; alone per order on failure.

        A failed transaction wrote nothing, so retrying its orders one by one
        isolates the failing order: the others still commit, and only its caller
        sees the error (as when each order committed alone).
        """
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                notices = [
                    n for _, produced in items for n in await self._persist_on(conn, produced)
                ]
        except Exception as failure:
            if len(items) == 1:
                results[items[0][0]] = failure
                return
            for index, produced in items:
                try:
                    async with self.pool.acquire() as conn, conn.transaction():
                        notices = await self._persist_on(conn, produced)
                except Exception as alone:
                    results[index] = alone
                    continue
                self._notify_all(notices)
            return
        self._notify_all(notices)

    async def _read_contexts(
        self, wanted: list[tuple[str, str, str]]
    ) -> list[asyncpg.Record | BaseException]:
        async with self.pool.acquire() as conn:
            return list(await store.order_contexts(conn, wanted))

    async def _write_orders(
        self, batch: list[tuple[Order, store.OutgoingEvent]]
    ) -> list[tuple[int, bytes] | BaseException | None]:
        """Reserve and persist concurrent submits (distinct accounts) in one statement."""
        async with self.pool.acquire() as conn:
            if len(batch) > 1:
                try:
                    written = await store.submit_orders(conn, batch)
                except asyncpg.UniqueViolationError:
                    pass  # one of them reuses a client_order_id: settle each alone
                else:
                    return [written.get(order.order_id) for order, _ in batch]
            results: list[tuple[int, bytes] | BaseException | None] = []
            for order, event in batch:
                try:
                    results.append(await store.submit_order(conn, order, event))
                except asyncpg.UniqueViolationError as duplicate:
                    results.append(duplicate)
            return results

    async def _book_instrument(self, instrument: Instrument) -> None:
        """Give the engine the symbol's rules; saved once per change so a restart can reload."""
        if self._saved_instruments.get(instrument.symbol) != instrument:
            async with self.pool.acquire() as conn:
                await store.save_instrument(conn, instrument)
            self._saved_instruments[instrument.symbol] = instrument
        self.engine.set_instrument(instrument)

    async def _resubmission(
        self, conn: asyncpg.Connection, account_id: str, request: OrderRequest
    ) -> Order:
        existing = await store.get_order_by_client_id(conn, account_id, request.client_order_id)
        assert existing is not None
        return resolve_resubmission(store.order_from_row(existing), request)

    async def _reservation(
        self, order: Order, context: asyncpg.Record, open_orders: OpenOrders
    ) -> Decimal:
        bid, ask, last = self.engine.last_prices(order.symbol)
        priced_by_limit = order.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        if not priced_by_limit and (ask if order.side is Side.BUY else bid) is None:
            # Only an order priced by the market needs a quote the engine has not seen.
            quotes = await self.market.latest_prices([order.symbol])
            if order.symbol in quotes:
                bid, ask, last = quotes[order.symbol]
        price = reservation_price(
            side=order.side,
            order_type=order.order_type,
            limit_price=order.limit_price,
            stop_price=order.stop_price,
            trail_price=order.trail_price,
            trail_percent=order.trail_percent,
            bid=bid if bid else last,
            ask=ask if ask else last,
        )
        if price is None or price <= 0:
            raise FailedPrecondition(
                f"{order.symbol} has no quote yet, so a {order.order_type.value} order cannot be priced.",
                reason="NO_FRESH_QUOTE",
            )
        open_same_side = open_orders.buy_qty if order.side is Side.BUY else open_orders.sell_qty
        return reservation_for(
            side=order.side,
            qty=order.qty,
            notional=order.notional,
            price=price,
            position_qty=context["position_qty"],
            open_qty_same_side=open_same_side,
        )

    async def _risk_check(
        self, order: Order, context: asyncpg.Record, open_orders: OpenOrders
    ) -> None:
        available = (
            buying_power(
                context["cash"],
                context["net_cost"],
                context["gross_cost"],
                context["margin_multiplier"],
            )
            - context["reserved"]
        )
        request = risk_pb2.CheckOrderRequest(
            request_id=order.order_id,
            account_id=order.account_id,
            symbol=order.symbol,
            side=SIDE_TO_PB[order.side],
            type=TYPE_TO_PB[order.order_type],
            time_in_force=TIF_TO_PB[order.time_in_force],
            qty=dec(order.qty),
            notional=dec(order.notional),
            limit_price=dec(order.limit_price),
            stop_price=dec(order.stop_price),
            trail_price=dec(order.trail_price),
            trail_percent=dec(order.trail_percent),
            order_cost=dec(order.reserved),
            buying_power=dec(max(Decimal(0), available)),
            position_qty=dec(context["position_qty"]),
            open_buy_qty=dec(open_orders.buy_qty),
            open_sell_qty=dec(open_orders.sell_qty),
            open_order_count=open_orders.count,
            gross_exposure=dec(context["gross_cost"]),
            client_order_id=order.client_order_id,
        )
        result = await self.risk.check(request)
        if result.approved:
            return
        violation = result.violations[0] if result.violations else None
        reason = _reason_name(violation.reason_code) if violation else "UNSPECIFIED"
        message = violation.message if violation else "The risk service rejected this order."
        if reason == "RATE_LIMITED":
            retry = (
                result.retry_after.ToTimedelta().total_seconds()
                if result.HasField("retry_after")
                else 1.0
            )
            raise ResourceExhausted(message, retry_after_s=retry, reason=reason)
        raise FailedPrecondition(message, reason=reason)

    async def cancel(self, account_id: str, order_id: str, *, is_admin: bool = False) -> Order:
        async with self._lock:
            return await self._cancel_locked(account_id, order_id, is_admin=is_admin)

    async def _owned_row(
        self,
        conn: asyncpg.Connection,
        account_id: str,
        order_id: str,
        is_admin: bool,
        *,
        for_update: bool = False,
    ) -> asyncpg.Record:
        row = (
            await store.get_order(conn, order_id, for_update=for_update)
            if _is_uuid(order_id)
            else None
        )
        if row is None or (row["account_id"] != account_id and not is_admin):
            raise NotFound(f"Order {order_id} was not found.")
        return row

    async def _cancel_locked(self, account_id: str, order_id: str, *, is_admin: bool) -> Order:
        async with self.pool.acquire() as conn:
            await self._owned_row(conn, account_id, order_id, is_admin)
        removed = self.engine.remove(order_id)
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                order = store.order_from_row(
                    await self._owned_row(conn, account_id, order_id, is_admin, for_update=True)
                )
                at = now_ns()
                reserved = order.close(OrderStatus.CANCELED, at, "canceled by request")
                await store.close_order(
                    conn, order_id, OrderStatus.CANCELED, order.reason, to_datetime(at)
                )
                sequence = await store.release_and_sequence(conn, order.account_id, reserved, 1)
                payload = await self._emit_order_event(
                    conn, order, events_pb2.ORDER_EVENT_TYPE_CANCELED, sequence
                )
                # A parent's open legs go with it, in the same transaction.
                legs = await self._persist_on(conn, self.engine.close_legs(order, at))
        except BaseException:
            if removed is not None and removed.is_open:
                await self._persist(self.engine.add(removed, now_ns()))
            raise
        if removed is None:
            self._canceled_before_booked.add(order_id)
        self._notify(order.account_id, payload)
        self._notify_all(legs)
        return order

    async def cancel_all(
        self, account_id: str, symbols: Sequence[str]
    ) -> list[tuple[str, Order | None, str]]:
        async with self.pool.acquire() as conn:
            rows = await store.open_orders(conn, account_id)
        results: list[tuple[str, Order | None, str]] = []
        for row in rows:
            if symbols and row["symbol"] not in symbols:
                continue
            try:
                results.append(
                    (row["order_id"], await self.cancel(account_id, row["order_id"]), "")
                )
            except FailedPrecondition as refused:
                async with self.pool.acquire() as conn:
                    current = await store.get_order(conn, row["order_id"])
                order = store.order_from_row(current) if current else None
                # A leg canceled with its parent earlier in this loop is canceled.
                gone_with_parent = order is not None and order.status is OrderStatus.CANCELED
                results.append(
                    (row["order_id"], order, "" if gone_with_parent else refused.message)
                )
        return results

    async def replace(
        self, account_id: str, order_id: str, change: ReplaceRequest, *, is_admin: bool = False
    ) -> Order:
        async with self.pool.acquire() as conn:
            original = store.order_from_row(
                await self._owned_row(conn, account_id, order_id, is_admin)
            )
        instrument = await self.market.instrument(original.symbol)
        if not change.client_order_id:
            change = dataclasses.replace(change, client_order_id=str(uuid.uuid4()))
        successor = build_replacement(
            original, change, instrument, order_id=str(uuid.uuid4()), now_ns=now_ns()
        )
        await self._check_group_replace(original, successor)
        release = await self._entries.acquire((original.account_id, original.symbol))
        try:
            return await self._replace_held(
                account_id, order_id, successor, instrument, is_admin=is_admin
            )
        finally:
            release()

    async def _check_group_replace(self, original: Order, successor: Order) -> None:
        """Legs may change price and size (never beyond what their entry filled); parents may not."""
        if original.order_class is OrderClass.SIMPLE:
            return
        if original.parent_id is None:
            raise FailedPrecondition(
                f"Order {original.order_id} is the parent of a {original.order_class.value} "
                "order: replace its legs, or cancel it (with its legs) and submit again."
            )
        async with self.pool.acquire() as conn:
            parent_row = await store.get_order(conn, original.parent_id)
        assert parent_row is not None and successor.qty is not None
        parent = store.order_from_row(parent_row)
        limit = parent.qty if parent.order_class is OrderClass.OCO else parent.filled_qty
        if original.status is OrderStatus.HELD:
            limit = parent.qty
        if limit is not None and successor.qty > limit:
            raise FailedPrecondition(
                f"An exit leg may not exceed what its entry filled: "
                f"{format_decimal(successor.qty)} > {format_decimal(limit)}."
            )

    async def _replace_held(
        self,
        account_id: str,
        order_id: str,
        successor: Order,
        instrument: Instrument,
        *,
        is_admin: bool,
    ) -> Order:
        """The replace, with its account and symbol held as a submit holds them.

        The original's shares do not count against the successor: it leaves the
        book in the same transaction that books the successor.
        """
        open_orders = await self._open_orders(
            successor.account_id, successor.symbol, excluding=order_id
        )
        async with self.pool.acquire() as conn:
            context = await store.order_context(conn, successor.account_id, successor.symbol)
        if successor.parent_id is None:
            successor.reserve(await self._reservation(successor, context, open_orders))
            await self._risk_check(successor, context, open_orders)
        # else: an exit leg is reduce-only; it reserves nothing and needs no risk check.
        await self._book_instrument(instrument)
        async with self._lock:
            removed = self.engine.remove(order_id)
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    current = store.order_from_row(
                        await self._owned_row(conn, account_id, order_id, is_admin, for_update=True)
                    )
                    at = now_ns()
                    was_held = current.status is OrderStatus.HELD
                    released = current.replace_by(successor.order_id, at)
                    await store.release_and_sequence(conn, current.account_id, released, 0)
                    sequence = await store.reserve_buying_power(
                        conn, current.account_id, successor.reserved, 2
                    )
                    if sequence is None:
                        raise FailedPrecondition(
                            f"Insufficient buying power: the replacement needs {format_decimal(successor.reserved)}.",
                            reason="INSUFFICIENT_BUYING_POWER",
                        )
                    await store.close_order(
                        conn,
                        order_id,
                        OrderStatus.REPLACED,
                        "replaced",
                        to_datetime(at),
                        successor.order_id,
                    )
                    if was_held:
                        successor.hold(at)
                    else:
                        successor.accept(at)
                    await store.insert_order(conn, successor)
                    first = await self._emit_order_event(
                        conn, current, events_pb2.ORDER_EVENT_TYPE_REPLACED, sequence - 1
                    )
                    second = await self._emit_order_event(
                        conn, successor, events_pb2.ORDER_EVENT_TYPE_NEW, sequence
                    )
            except BaseException:
                if removed is not None and removed.is_open:
                    await self._persist(self.engine.add(removed, now_ns()))
                raise
            self._notify(current.account_id, first)
            self._notify(current.account_id, second)
            await self._persist(self.engine.replaced(order_id, successor, now_ns()))
        return successor

    async def close_position(
        self, account_id: str, symbol: str, qty: Decimal | None, percentage: Decimal | None
    ) -> Order:
        await self.ensure_account(account_id)
        async with self.pool.acquire() as conn:
            row = await store.position(conn, account_id, symbol)
        if row is None:
            raise NotFound(f"There is no open position in {symbol}.")
        held: Decimal = row["qty"]
        # Exit legs that would reduce the position could never fill after it is closed.
        async with self.pool.acquire() as conn:
            exits = await store.open_exits(conn, account_id, symbol, "sell" if held > 0 else "buy")
        for exit_id in exits:
            # An exit filled or canceled (with its parent) meanwhile is already gone.
            with contextlib.suppress(FailedPrecondition):
                await self.cancel(account_id, exit_id)
        amount = abs(held)
        if qty is not None:
            if qty <= 0 or qty > amount:
                raise FailedPrecondition(
                    f"qty must be between 0 and the position size {format_decimal(amount)}."
                )
            amount = qty
        elif percentage is not None:
            if percentage <= 0 or percentage > 100:
                raise FailedPrecondition("percentage must be above 0 and at most 100.")
            instrument = await self.market.instrument(symbol)
            amount = (amount * percentage / 100 / instrument.qty_increment).to_integral_value(
                rounding="ROUND_FLOOR"
            ) * instrument.qty_increment
            if amount <= 0:
                raise FailedPrecondition(
                    "That percentage of the position is less than one tradable unit."
                )
        request = OrderRequest(
            symbol=symbol,
            side=Side.SELL if held > 0 else Side.BUY,
            order_type=OrderType.MARKET,
            time_in_force=TimeInForce.DAY,
            qty=amount,
        )
        return await self.submit(account_id, request)

    # ---- the fill engine's side ------------------------------------------------

    async def on_ticks(self, events: list[Event]) -> None:
        """Feed a batch of `marketdata.ticks.v1` records to the engine; persist what fills."""
        async with self._lock:
            for event in events:
                if not isinstance(event.message, md_events_pb2.TickEvent):
                    continue
                decoded = decode_tick(event.message)
                if decoded is None:
                    continue
                tick, sequence = decoded
                if sequence and sequence <= self._tick_marks.get(tick.symbol, 0):
                    continue  # redelivered: its effects are already applied
                self._tick_marks[tick.symbol] = sequence
                produced = (
                    self.engine.on_quote(tick)
                    if isinstance(tick, Quote)
                    else self.engine.on_trade(tick)
                )
                if produced:
                    await self._persist(produced, tick_mark=(tick.symbol, sequence))

    async def reload(self) -> int:
        """Rebuild the book from the database after a restart; returns the orders reloaded."""
        async with self.pool.acquire() as conn:
            rows = await store.open_orders(conn)
            self._tick_marks = await store.tick_marks(conn)
            self._saved_instruments = await store.instruments(conn)
        async with self._lock:
            loaded = [store.order_from_row(row) for row in rows]
            loaded = [order for order in loaded if order.order_id not in self.engine]
            for order in loaded:
                instrument = self._saved_instruments.get(order.symbol)
                if instrument is None:
                    # Accepted before instruments were saved: ask market data (this
                    # needs it to answer without a caller's credential).
                    instrument = await self.market.instrument(order.symbol)
                self.engine.set_instrument(instrument)
            for order in await reload_groups(self, loaded):
                await self._persist(self.engine.add(order, now_ns()))
        return len(rows)

    async def save_water_marks(self) -> int:
        """Persist the trailing-stop water marks that moved since the last call (one batch)."""
        marks = self.engine.take_water_marks()
        if marks:
            async with self.pool.acquire() as conn:
                await store.save_water_marks(conn, marks)
        return len(marks)

    async def expire_day_orders(self, *, post_market: bool = False) -> int:
        """The session closed: closing auction, day orders expire (extended ones at post_market)."""
        async with self._lock:
            produced = self.engine.close_session(now_ns(), post_market=post_market)
            await self._persist(produced)
        return len(produced)

    async def open_session(self) -> None:
        """The session opened: each symbol's next trade is its opening auction print."""
        async with self._lock:
            self.engine.open_session()

    async def expire_due(self) -> int:
        """Expire gtd orders whose expire_at has come."""
        async with self._lock:
            produced = self.engine.expire_due(now_ns())
            await self._persist(produced)
        return len(produced)

    async def _persist(
        self, produced: list[EngineEvent], tick_mark: tuple[str, int] | None = None
    ) -> None:
        """Persist engine events one transaction each (what ticks and restarts produce)."""
        for event in produced:
            async with self.pool.acquire() as conn, conn.transaction():
                notices = await self._persist_on(conn, [event], tick_mark)
            self._notify_all(notices)

    async def _persist_on(
        self,
        conn: asyncpg.Connection,
        produced: list[EngineEvent],
        tick_mark: tuple[str, int] | None = None,
    ) -> list[tuple[str, bytes]]:
        """Write `produced` inside the caller's transaction; the order events to announce."""
        notices: list[tuple[str, bytes]] = []
        for event in produced:
            if isinstance(event, Fill):
                payload = await self._apply_fill_on(conn, event, tick_mark)
                if payload is not None:
                    notices.append((event.account_id, payload))
            elif isinstance(event, OrderClosed):
                closed = await self._record_close_on(conn, event)
                if closed is not None:
                    notices.append(closed)
            elif isinstance(event, LegReleased):
                notices.append(await self._record_release_on(conn, event))
            elif isinstance(event, OrderTriggered):
                await store.mark_triggered(
                    conn, event.order_id, event.water_mark, to_datetime(event.ts_ns)
                )
        return notices

    def _notify_all(self, notices: list[tuple[str, bytes]]) -> None:
        for account_id, payload in notices:
            self._notify(account_id, payload)

    async def apply_fill(self, fill: Fill, tick_mark: tuple[str, int] | None = None) -> bool:
        """Apply one fill in one transaction; False (and no change) if it was applied before."""
        async with self.pool.acquire() as conn, conn.transaction():
            payload = await self._apply_fill_on(conn, fill, tick_mark)
        if payload is None:
            return False
        self._notify(fill.account_id, payload)
        return True

    async def _apply_fill_on(
        self, conn: asyncpg.Connection, fill: Fill, tick_mark: tuple[str, int] | None
    ) -> bytes | None:
        """A fill's whole effect inside the caller's transaction; None if applied before."""
        at = to_datetime(fill.ts_ns)
        taken = await store.take_fill(
            conn,
            fill_id=fill.fill_id,
            order_id=fill.order_id,
            account_id=fill.account_id,
            symbol=fill.symbol,
            side=fill.side.value,
            qty=fill.qty,
            price=fill.price,
            commission=fill.commission,
            at=at,
        )
        if taken is None:
            return None
        held, order_row = taken
        effect = settle_fill(held, fill.side, fill.qty, fill.price, fill.commission)
        before = store.order_from_row(order_row)
        if before.qty is not None:
            remaining_before = before.qty - before.filled_qty
            part = fill.qty
        else:
            assert before.notional is not None
            remaining_before = before.notional - before.filled_notional
            part = fill.qty * fill.price
        released = (
            before.reserved
            if fill.order_status is not OrderStatus.PARTIALLY_FILLED
            else released_reservation(before.reserved, part, remaining_before)
        )
        after = before
        after.apply_fill(
            fill.order_status,
            fill.order_filled_qty,
            fill.order_filled_notional,
            fill.order_fill_count,
            fill.ts_ns,
            released,
        )
        settled = await store.settle_fill_rows(
            conn,
            position=effect.position,
            realized_pnl=effect.realized_pnl,
            order=after,
            commission=fill.commission,
            released=released,
            at=at,
            cash_delta=effect.cash_delta,
            net_cost_delta=effect.net_cost_delta,
            gross_cost_delta=effect.gross_cost_delta,
        )
        kind = (
            events_pb2.ORDER_EVENT_TYPE_FILL
            if fill.order_status is OrderStatus.FILLED
            else events_pb2.ORDER_EVENT_TYPE_PARTIAL_FILL
        )
        sequence: int = settled["event_seq"]
        message = order_event(
            event_id=new_event_id(),
            order=order_message(after, commission=settled["commission"]),
            kind=kind,
            sequence=sequence,
            ts_ns=after.updated_ns or now_ns(),
            fill=fill_message(fill),
        )
        position = effect.position
        fill_event = events_pb2.FillEvent(
            event_id=new_event_id(),
            fill=fill_message(fill),
            position_qty=dec(position.qty),
            position_avg_entry_price=dec(position.avg_entry_price),
            cash=dec(settled["cash"]),
        )
        order_outgoing = _outgoing(message)
        await store.record_fill(
            conn,
            fill_id=fill.fill_id,
            account_id=fill.account_id,
            net_amount=effect.cash_delta,
            symbol=fill.symbol,
            side=fill.side.value,
            qty=fill.qty,
            price=fill.price,
            order_id=fill.order_id,
            at=at,
            sequence=sequence,
            order_event=order_outgoing,
            fill_event=_outgoing(fill_event, TOPIC_FILLS),
        )
        payload = order_outgoing.payload
        if tick_mark is not None and tick_mark[1]:
            await store.advance_tick_mark(conn, *tick_mark)
        return payload

    async def _record_release_on(
        self, conn: asyncpg.Connection, event: LegReleased
    ) -> tuple[str, bytes]:
        """An exit leg released (or grown) by its entry's fill: its size and status, announced."""
        at = to_datetime(event.ts_ns)
        await store.release_leg(conn, event.order_id, event.qty, at)
        row = await store.get_order(conn, event.order_id)
        assert row is not None
        order = store.order_from_row(row)
        sequence = await store.release_and_sequence(conn, order.account_id, Decimal(0), 1)
        payload = await self._emit_order_event(
            conn, order, events_pb2.ORDER_EVENT_TYPE_ACCEPTED, sequence
        )
        return order.account_id, payload

    async def _record_close_on(
        self, conn: asyncpg.Connection, event: OrderClosed
    ) -> tuple[str, bytes] | None:
        """Close an order inside the caller's transaction; None if it was closed already."""
        at = to_datetime(event.ts_ns)
        row = await store.get_order(conn, event.order_id, for_update=True)
        assert row is not None
        order = store.order_from_row(row)
        if not order.is_open:
            return None
        reserved = order.close(event.status, event.ts_ns, event.reason)
        await store.close_order(conn, event.order_id, event.status, event.reason, at)
        sequence = await store.release_and_sequence(conn, order.account_id, reserved, 1)
        payload = await self._emit_order_event(conn, order, CLOSING_EVENT[event.status], sequence)
        return order.account_id, payload

    async def _emit_order_event(
        self,
        conn: asyncpg.Connection,
        order: Order,
        kind: int,
        sequence: int,
        *,
        fill: Fill | None = None,
        commission: Decimal | None = None,
    ) -> bytes:
        message = order_event(
            event_id=new_event_id(),
            order=order_message(order, commission=commission),
            kind=kind,
            sequence=sequence,
            ts_ns=order.updated_ns or now_ns(),
            fill=fill_message(fill) if fill is not None else None,
        )
        payload = message.SerializeToString()
        await store.insert_order_event(conn, order.account_id, sequence, payload)
        await outbox.enqueue(
            conn, TOPIC_ORDERS, order.account_id, message, event_id=message.event_id
        )
        return payload

    # ---- order update streams --------------------------------------------------

    def subscribe(self, account_id: str) -> asyncio.Queue[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=10_000)
        self._subscribers[account_id].add(queue)
        return queue

    def unsubscribe(self, account_id: str, queue: asyncio.Queue[bytes]) -> None:
        self._subscribers[account_id].discard(queue)

    def _notify(self, account_id: str, payload: bytes) -> None:
        for queue in list(self._subscribers.get(account_id, ())):
            if queue.full():
                continue  # a stalled reader resumes from the stored events by sequence
            queue.put_nowait(payload)

    # ---- reads -----------------------------------------------------------------

    async def marks(self, symbols: list[str]) -> dict[str, Decimal]:
        """The latest price per symbol: last trade, else the quote's midpoint."""
        marks: dict[str, Decimal] = {}
        missing: list[str] = []
        for symbol in symbols:
            bid, ask, last = self.engine.last_prices(symbol)
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

    async def account(self, account_id: str) -> tuple[asyncpg.Record, AccountFigures]:
        await self.ensure_account(account_id)
        async with self.pool.acquire() as conn:
            row = await store.get_account(conn, account_id)
            rows = await store.positions(conn, account_id)
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

    async def snapshot_equity(self, *, session_close: bool = False) -> int:
        """Record every account's marked equity (portfolio history); at the close also last_equity."""
        async with self.pool.acquire() as conn:
            rows = await store.all_accounts_with_positions(conn)
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
            await store.insert_equity_snapshots(conn, snapshots)
            if session_close:
                await store.set_last_equity(conn, [(a, e) for a, _, e in snapshots])
        return len(snapshots)


def _outgoing(
    message: events_pb2.OrderEvent | events_pb2.FillEvent, topic: str = TOPIC_ORDERS
) -> store.OutgoingEvent:
    """`message` as an outbox row written by one of the store's combined statements."""
    headers = {name: value.decode() for name, value in encode_headers(message, message.event_id)}
    return store.OutgoingEvent(
        event_id=message.event_id,
        topic=topic,
        schema_name=message.DESCRIPTOR.full_name,
        payload=message.SerializeToString(),
        headers_json=json.dumps(headers),
    )


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
