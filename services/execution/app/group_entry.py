"""Order entry of bracket, OCO and OTO orders, and of simple orders with session terms.

A group is checked (`cift.trading.order_classes.plan_group`), risk-checked and
reserved for its entry only — exits are reduce-only and reserve nothing; an OCO
closes a position the account holds, so it needs no risk check and may be placed
by a halted or reducing account — then written (parent, legs, their NEW events
and outbox rows) in one transaction and booked, all under the live book's engine
lock so no tick or cancel slips between the write and the book.

Simple orders with gtd, opg, cls or extended hours come here too: the one-statement
batched submit of `OrderStore.submit_orders` writes the columns every order has only.
Opg and cls orders arriving after their auction's cutoff are refused here.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING

from cift.runtime.errors import DomainError, FailedPrecondition
from cift.runtime.money import format_decimal
from cift.trading.auction import SessionClock, auction_refusal
from cift.trading.fills import FillEngine
from cift.trading.order_classes import ClassedRequest, accept_group, new_group, plan_group
from cift.trading.orders import AUCTION_TIFS, Order, OrderClass, OrderStatus
from cift.trading.vocabulary import Side
from services.execution.app.ports import OrderEventKind
from services.execution.app.store_ports import Database, OrderStore

if TYPE_CHECKING:
    from services.execution.app.entry import OrderEntry


def needs_group_entry(request: ClassedRequest) -> bool:
    order = request.order
    return (
        request.order_class is not OrderClass.SIMPLE
        or request.take_profit is not None
        or request.stop_loss is not None
        or order.expire_ns is not None
        or order.extended_hours
        or order.time_in_force in AUCTION_TIFS
    )


async def submit_group(desk: OrderEntry, account_id: str, request: ClassedRequest) -> Order:
    """Place `request`'s parent and legs; all or nothing. Returns the parent."""
    await desk.ensure_account(account_id)
    entry = request.order
    instrument = await desk.market.instrument(entry.symbol)
    if not entry.client_order_id:
        entry = dataclasses.replace(entry, client_order_id=str(uuid.uuid4()))
        request = dataclasses.replace(request, order=entry)
    market_now: int | None = None
    if entry.time_in_force in AUCTION_TIFS or entry.expire_ns is not None:
        # Auction cutoffs and gtd dates are instants of the market clock, not this host's.
        clock = await desk.market.clock()
        market_now = clock.now_ns
        refusal = auction_refusal(
            entry.time_in_force,
            SessionClock(clock.now_ns, clock.is_open, clock.next_open_ns, clock.next_close_ns),
        )
        if refusal is not None:
            raise FailedPrecondition(refusal, reason="AUCTION_CUTOFF")
    bid, ask, last = desk.live.engine.last_prices(entry.symbol)
    market_price = (ask if entry.side is Side.BUY else bid) or last
    plan = plan_group(request, instrument, market_price=market_price)
    ids = [str(uuid.uuid4()) for _ in range(1 + len(plan.legs))]
    now = time.time_ns()
    parent, legs = new_group(
        plan,
        instrument,
        order_ids=ids,
        leg_client_ids=[str(uuid.uuid4()) for _ in plan.legs],
        account_id=account_id,
        now_ns=now,
        market_now_ns=market_now,
    )
    release = await desk.live.entries.acquire((account_id, entry.symbol))
    try:
        open_orders = await desk.open_orders(account_id, entry.symbol)
        async with desk.pool.acquire() as conn:
            context = await desk.stores.accounts.order_context(
                conn, account_id, entry.symbol, parent.client_order_id
            )
            if context.existing_order_id is not None:
                return await desk.resubmission(conn, account_id, plan.parent)
        if plan.order_class is OrderClass.OCO:
            _require_position_to_close(parent, context.position_qty)
        else:
            parent.reserve(await desk.pretrade.reservation(parent, context, open_orders))
            await desk.pretrade.risk_check(parent, context, open_orders)
        await desk.book_instrument(instrument)
        accept_group(parent, legs, now)
        await _write_and_book(desk, parent, legs)
    finally:
        release()
    return parent


def _require_position_to_close(oco: Order, position_qty: Decimal) -> None:
    """An OCO only closes: a sell needs that many shares long, a buy that many short."""
    held = position_qty if oco.side is Side.SELL else -position_qty
    assert oco.qty is not None
    if held < oco.qty:
        raise FailedPrecondition(
            f"An oco order closes a position: {oco.side.value} {format_decimal(oco.qty)} "
            f"{oco.symbol} needs a {'long' if oco.side is Side.SELL else 'short'} position of "
            f"at least that size (held: {format_decimal(position_qty)}).",
            reason="OCO_WITHOUT_POSITION",
        )


async def _write_and_book(desk: OrderEntry, parent: Order, legs: list[Order]) -> None:
    members = [parent, *legs]
    async with desk.live.lock:
        try:
            async with desk.pool.acquire() as conn, conn.transaction():
                sequence = await desk.stores.accounts.reserve_buying_power(
                    conn, parent.account_id, parent.reserved, len(members)
                )
                if sequence is None:
                    raise FailedPrecondition(
                        f"Insufficient buying power: this order needs {format_decimal(parent.reserved)}.",
                        reason="INSUFFICIENT_BUYING_POWER",
                    )
                payloads = []
                for offset, order in enumerate(members):
                    await desk.stores.orders.insert_order(conn, order)
                    payloads.append(
                        await desk.journal.emit_order_event(
                            conn,
                            order,
                            OrderEventKind.NEW,
                            sequence - len(members) + 1 + offset,
                        )
                    )
        except DomainError:
            raise  # refused: nothing was written
        except Exception:
            # The reply was lost, not necessarily the commit: if the rows are there
            # once the database answers, the repair books the group.
            desk.live.book_if_written(order.order_id for order in members)
            raise
        for payload in payloads:
            desk.subscriptions.notify(parent.account_id, payload)
        await desk.journal.persist(desk.live.engine.add_group(parent, legs, time.time_ns()))


async def reload_groups(
    pool: Database, orders_store: OrderStore, engine: FillEngine, orders: list[Order]
) -> list[Order]:
    """Link the groups of reloaded open orders in the engine; returns the orders to book.

    Held legs go back to waiting; the others are returned (parents last) for the
    caller to add. A group whose exit filled before the restart stays exited, so
    its other exit cannot fill after it.
    """
    grouped = [o for o in orders if o.order_class is not OrderClass.SIMPLE]
    if not grouped:
        return orders
    parent_ids = sorted({o.parent_id or o.order_id for o in grouped})
    async with pool.acquire() as conn:
        leg_rows = await orders_store.legs_of(conn, parent_ids)
        parent_rows = {pid: await orders_store.get_order(conn, pid) for pid in parent_ids}
    open_ids = {o.order_id for o in orders}
    for parent_id in parent_ids:
        parent_row = parent_rows[parent_id]
        assert parent_row is not None
        parent = orders_store.order_from_row(parent_row)
        legs = [orders_store.order_from_row(r) for r in leg_rows if r["parent_id"] == parent_id]
        exits = legs if parent.order_class is not OrderClass.OCO else [parent, *legs]
        engine.link(
            parent_id,
            parent.order_class,
            [leg.order_id for leg in legs if leg.status is not OrderStatus.REPLACED],
            open_ids=open_ids,
            exited=any(e.filled_qty > 0 for e in exits),
        )
    booked: list[Order] = []
    for order in orders:
        if order.status is OrderStatus.HELD:
            engine.hold(order)
        else:
            booked.append(order)
    booked.sort(key=lambda o: o.parent_id is None)  # legs before parents, as on entry
    return booked
