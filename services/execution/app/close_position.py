"""Closing a position: cancel the exits that would reduce it, then one opposite market order.

A use case of its own: it neither changes an order in place (amendments) nor
takes a new order's request from the caller (entry); it composes the two.
"""

from __future__ import annotations

import contextlib
from decimal import Decimal

from cift.runtime.errors import FailedPrecondition, NotFound
from cift.runtime.money import format_decimal
from cift.trading.money import floor_to_increment
from cift.trading.orders import Order, OrderRequest
from cift.trading.vocabulary import OrderType, Side, TimeInForce
from services.execution.app.amend import OrderAmendments
from services.execution.app.entry import OrderEntry


async def close_position(
    entry: OrderEntry,
    amend: OrderAmendments,
    account_id: str,
    symbol: str,
    qty: Decimal | None,
    percentage: Decimal | None,
) -> Order:
    """Flatten all, `qty` or `percentage` of a position with a market order (DAY).

    Its exits go first, since they could never fill once the position is gone.
    """
    await entry.ensure_account(account_id)
    async with entry.pool.acquire() as conn:
        row = await entry.stores.accounts.position(conn, account_id, symbol)
    if row is None:
        raise NotFound(f"There is no open position in {symbol}.")
    held: Decimal = row["qty"]
    # Exit legs that would reduce the position could never fill after it is closed.
    async with entry.pool.acquire() as conn:
        exits = await entry.stores.orders.open_exits(
            conn, account_id, symbol, "sell" if held > 0 else "buy"
        )
    for exit_id in exits:
        # An exit filled or canceled (with its parent) meanwhile is already gone.
        with contextlib.suppress(FailedPrecondition):
            await amend.cancel(account_id, exit_id)
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
        instrument = await entry.market.instrument(symbol)
        amount = floor_to_increment(amount * percentage / 100, instrument.qty_increment)
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
    return await entry.submit(account_id, request)
