"""SQL of fills: taking a fill once (idempotent by fill id) with its explanation, settling
it, recording its activity and events, reading fills back, and the per-symbol tick
marks that make redelivered ticks no-ops.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from cift.runtime.outbox import NOTIFY_SQL
from cift.trading.fills import Fill, FillExplanation, PriceSource
from cift.trading.intraday import DayFills
from cift.trading.ledger import Balances, Position
from services.execution.adapters.outbox_sql import (
    event_args,
    event_params,
    log_values,
    queue_values,
)
from services.execution.app.store_ports import OutgoingEvent, SettledFill

TAKE_FILL_SQL = """
WITH recorded AS (
    INSERT INTO fills (fill_id, order_id, account_id, symbol, side, qty, price, commission,
                       occurred_at, price_source, tick_sequence, tick_ts_ns, market_price,
                       bid, ask, bid_size, ask_size, trade_price, trade_size, available_qty,
                       limit_price, displayed_size_only, slippage_bps, commission_per_share,
                       commission_bps)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
            $19, $20, $21, $22, $23, $24, $25) ON CONFLICT DO NOTHING
    RETURNING fill_id
)
SELECT o.*, held.qty AS held_qty, held.cost_basis AS held_cost_basis,
       a.cash AS account_cash, a.net_cost AS account_net_cost,
       a.gross_cost AS account_gross_cost, a.margin_multiplier AS account_margin_multiplier
FROM recorded
JOIN orders o ON o.order_id = $2
JOIN accounts a ON a.account_id = $3
LEFT JOIN LATERAL (
    SELECT qty, cost_basis FROM positions WHERE account_id = $3 AND symbol = $4 FOR UPDATE
) held ON true
FOR UPDATE OF o, a
"""


def balances(taken: asyncpg.Record) -> Balances:
    """The account's figures a fill's row from `take_fill` carries (the row is locked)."""
    return Balances(
        taken["account_cash"],
        taken["account_net_cost"],
        taken["account_gross_cost"],
        taken["account_margin_multiplier"],
    )


async def take_fill(
    conn: asyncpg.Connection, fill: Fill, at: datetime
) -> tuple[Position, asyncpg.Record] | None:
    """Record a fill and lock its position and order rows: one statement.

    None when this fill id was already applied: then nothing is written or
    locked, and nothing else may change. Otherwise the position as it stands
    (locked before the order, as every fill does) and the order row, with the
    account's figures (`balances`), locked too: the ledger computes the buying
    power the settlement stores from them.
    """
    row = await conn.fetchrow(
        TAKE_FILL_SQL,
        fill.fill_id,
        fill.order_id,
        fill.account_id,
        fill.symbol,
        fill.side.value,
        fill.qty,
        fill.price,
        fill.commission,
        at,
        *_explanation_args(fill.explanation),
    )
    if row is None:
        return None
    if row["held_qty"] is None:
        return Position(fill.symbol), row
    return Position(fill.symbol, row["held_qty"], row["held_cost_basis"]), row


# The explanation's fields after its source: columns of the same names, in this order.
_EXPLAINED = tuple(field.name for field in dataclasses.fields(FillExplanation))[1:]


def _explanation_args(explanation: FillExplanation | None) -> tuple[Any, ...]:
    if explanation is None:
        return (None,) * (1 + len(_EXPLAINED))
    return (explanation.source.value, *(getattr(explanation, name) for name in _EXPLAINED))


def explanation_from_row(row: Any) -> FillExplanation | None:
    """A stored fill's explanation; None for fills recorded before fills carried one."""
    if row["price_source"] is None:
        return None
    return FillExplanation(PriceSource(row["price_source"]), **{n: row[n] for n in _EXPLAINED})


async def fills_of_orders(
    conn: asyncpg.Connection, order_ids: Sequence[str]
) -> list[asyncpg.Record]:
    """The fills of these orders, oldest first (ties in fill id order)."""
    return list(
        await conn.fetch(
            "SELECT * FROM fills WHERE order_id = ANY($1::text[]) ORDER BY occurred_at, fill_id",
            list(order_ids),
        )
    )


async def explanations(
    conn: asyncpg.Connection, fill_ids: Sequence[str]
) -> dict[str, FillExplanation]:
    """The explanations of these fills, by fill id (fills without one are left out)."""
    rows = await conn.fetch("SELECT * FROM fills WHERE fill_id = ANY($1::text[])", list(fill_ids))
    found = {row["fill_id"]: explanation_from_row(row) for row in rows}
    return {fill_id: e for fill_id, e in found.items() if e is not None}


SETTLE_FILL_SQL = """
WITH held AS (
    INSERT INTO positions (account_id, symbol, qty, cost_basis, realized_pnl, updated_at)
    VALUES ($1, $2, $3, $4, $5, now())
    ON CONFLICT (account_id, symbol) DO UPDATE
    SET qty = $3, cost_basis = $4, realized_pnl = positions.realized_pnl + $5, updated_at = now()
), placed AS (
    UPDATE orders
    SET status = $7, filled_qty = $8, filled_notional = $9, fill_count = $10,
        commission = commission + $11, reserved = greatest(0, reserved - $12),
        triggered = $13, water_mark = $14, updated_at = $15,
        filled_at = CASE WHEN $7 = 'filled' THEN $15 ELSE filled_at END
    WHERE order_id = $6
    RETURNING commission
), charged AS (
    UPDATE accounts
    SET cash = cash + $16, net_cost = net_cost + $17, gross_cost = gross_cost + $18,
        realized_pnl = realized_pnl + $5, commissions = commissions + $19,
        reserved = greatest(0, reserved - $12), event_seq = event_seq + 1, updated_at = now(),
        buying_power = $20
    WHERE account_id = $1
    RETURNING cash, event_seq
)
SELECT charged.cash, charged.event_seq, placed.commission FROM charged, placed
"""


async def settle_fill_rows(conn: asyncpg.Connection, settled: SettledFill) -> asyncpg.Record:
    """A fill's position, order and account changes in one statement (one round trip).

    The position and order rows are already locked by the caller's transaction; the
    account row is updated last, as in every other transaction that changes it;
    `settled.buying_power` is the ledger's figure for the row after these deltas.
    Returns the account's new cash and event sequence, and the order's total
    commission, which the fill's events carry.
    """
    effect, order, commission = settled.effect, settled.order, settled.fill.commission
    position = effect.position
    row = await conn.fetchrow(
        SETTLE_FILL_SQL,
        order.account_id,
        position.symbol,
        position.qty,
        position.cost_basis,
        effect.realized_pnl,
        order.order_id,
        order.status.value,
        order.filled_qty,
        order.filled_notional,
        order.fill_count,
        commission,
        settled.released,
        order.triggered,
        order.water_mark,
        settled.at,
        effect.cash_delta,
        effect.net_cost_delta,
        effect.gross_cost_delta,
        commission,
        settled.buying_power,
    )
    assert row is not None, f"order {order.order_id} or its account vanished"
    return row


# The fill's order event ($12-$16) and fill event ($17-$21), keyed by the account ($2).
_ORDER_EVENT = event_params(12, key="$2")
_FILL_EVENT = event_params(17, key="$2")
RECORD_FILL_SQL = f"""
WITH activity AS (
    INSERT INTO activities (activity_id, account_id, activity_type, occurred_at, net_amount,
                            symbol, side, qty, price, order_id, description)
    VALUES ($1, $2, 'fill', $3, $4, $5, $6, $7, $8, $9, $10)
), logged AS (
    {log_values("$2", "$11", _ORDER_EVENT.payload)}
), queued AS (
    {queue_values(_ORDER_EVENT, _FILL_EVENT)}
)
SELECT {NOTIFY_SQL}
"""


async def record_fill(
    conn: asyncpg.Connection, settled: SettledFill, events: tuple[OutgoingEvent, OutgoingEvent]
) -> None:
    """A fill's activity entry, its order event and both outbox rows: one statement.

    The outbox rows go in this order (order event, then fill event), so the relay
    publishes them in it.
    """
    fill = settled.fill
    order_event, fill_event = events
    await conn.execute(
        RECORD_FILL_SQL,
        fill.fill_id,
        fill.account_id,
        settled.at,
        settled.effect.cash_delta,
        fill.symbol,
        fill.side.value,
        fill.qty,
        fill.price,
        fill.order_id,
        f"{fill.side.value.capitalize()} {fill.qty} {fill.symbol} @ {fill.price}",
        order_event.sequence,
        *event_args(order_event),
        *event_args(fill_event),
    )


async def day_fills(
    conn: asyncpg.Connection, account_id: str, since: datetime
) -> dict[str, DayFills]:
    """Per symbol, the account's fills from `since` on, summed per side.

    Read from the activity trail, which is indexed by account and time (fills is
    not). Each fill's amount is rounded to the cent half up, as the ledger books it.
    """
    rows = await conn.fetch(
        """SELECT symbol,
               coalesce(sum(qty) FILTER (WHERE side = 'buy'), 0) AS bought_qty,
               coalesce(sum(round(qty * price, 2)) FILTER (WHERE side = 'buy'), 0)
                   AS bought_amount,
               coalesce(sum(qty) FILTER (WHERE side = 'sell'), 0) AS sold_qty,
               coalesce(sum(round(qty * price, 2)) FILTER (WHERE side = 'sell'), 0)
                   AS sold_amount
        FROM activities
        WHERE account_id = $1 AND activity_type = 'fill' AND occurred_at >= $2
        GROUP BY symbol""",
        account_id,
        since,
    )
    return {
        r["symbol"]: DayFills(r["bought_qty"], r["bought_amount"], r["sold_qty"], r["sold_amount"])
        for r in rows
    }


async def advance_tick_mark(conn: asyncpg.Connection, symbol: str, sequence: int) -> None:
    await conn.execute(
        """INSERT INTO tick_marks (symbol, sequence) VALUES ($1, $2)
           ON CONFLICT (symbol) DO UPDATE SET sequence = greatest(tick_marks.sequence, $2)""",
        symbol,
        sequence,
    )


async def tick_marks(conn: asyncpg.Connection) -> dict[str, int]:
    return {row["symbol"]: row["sequence"] for row in await conn.fetch("SELECT * FROM tick_marks")}
