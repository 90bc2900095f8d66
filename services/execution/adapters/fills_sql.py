"""SQL of fills: taking a fill once (idempotent by fill id) with its explanation, booking
it (settlement, activity, events and tick mark in one statement), reading fills back,
and the per-symbol tick marks that make redelivered ticks no-ops.

A fill is four round trips: BEGIN, `take_fill` (record it, lock and read what it
changes), `book_fill` (write everything the journal computed from that), COMMIT. The
fill of a new order booked at once is one: `book_expected_fill` does both for figures
the journal settled it from in advance, and writes nothing if the rows moved from them.
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
from services.execution.adapters.order_rows import order_from_row
from services.execution.adapters.outbox_sql import (
    event_args,
    event_params,
    log_select,
    queue_values_if,
)
from services.execution.app.store_ports import Booking, OutgoingEvent, SettledFill, TakenFill

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
       a.gross_cost AS account_gross_cost, a.margin_multiplier AS account_margin_multiplier,
       a.event_seq AS account_event_seq
FROM recorded
JOIN orders o ON o.order_id = $2
JOIN accounts a ON a.account_id = $3
LEFT JOIN LATERAL (
    SELECT qty, cost_basis FROM positions WHERE account_id = $3 AND symbol = $4 FOR UPDATE
) held ON true
FOR UPDATE OF o, a
"""


async def take_fill(conn: asyncpg.Connection, fill: Fill, at: datetime) -> TakenFill | None:
    """Record a fill and lock the rows it changes: one statement.

    None when this fill id was already applied: then nothing is written or
    locked, and nothing else may change. Otherwise the position as it stands
    (locked before the order, as every fill does), the order, and the account's
    figures and event sequence, all locked until the transaction ends: what the
    journal computes from them (the settlement, the buying power, the events'
    sequence and bytes) still holds when `book_fill` writes it.
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
    held = (
        Position(fill.symbol)
        if row["held_qty"] is None
        else Position(fill.symbol, row["held_qty"], row["held_cost_basis"])
    )
    return TakenFill(
        held,
        order_from_row(row),
        Balances(
            row["account_cash"],
            row["account_net_cost"],
            row["account_gross_cost"],
            row["account_margin_multiplier"],
        ),
        row["account_event_seq"],
        row["commission"],
    )


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


# The fill's order event ($28-$32) and fill event ($33-$37), keyed by the account ($1).
_ORDER_EVENT = event_params(28, key="$1")
_FILL_EVENT = event_params(33, key="$1")


def _booking(source: str) -> str:
    """The CTEs that write a settled fill ($1-$25, the events $28-$37), each once per row of
    `source` (a CTE of one row, or of none: then nothing is written)."""
    return f"""held AS (
    INSERT INTO positions (account_id, symbol, qty, cost_basis, realized_pnl, updated_at)
    SELECT $1, $2, $3, $4, $5, now() FROM {source}
    ON CONFLICT (account_id, symbol) DO UPDATE
    SET qty = $3, cost_basis = $4, realized_pnl = positions.realized_pnl + $5, updated_at = now()
), placed AS (
    UPDATE orders
    SET status = $7, filled_qty = $8, filled_notional = $9, fill_count = $10,
        commission = commission + $11, reserved = greatest(0, reserved - $12),
        triggered = $13, water_mark = $14, updated_at = $15,
        filled_at = CASE WHEN $7 = 'filled' THEN $15 ELSE filled_at END
    FROM {source}
    WHERE order_id = $6
    RETURNING 1
), charged AS (
    UPDATE accounts
    SET cash = cash + $16, net_cost = net_cost + $17, gross_cost = gross_cost + $18,
        realized_pnl = realized_pnl + $5, commissions = commissions + $11,
        reserved = greatest(0, reserved - $12), event_seq = $25, updated_at = now(),
        buying_power = $19
    FROM {source}
    WHERE account_id = $1 AND event_seq = $25 - 1
    RETURNING 1
), activity AS (
    INSERT INTO activities (activity_id, account_id, activity_type, occurred_at, net_amount,
                            symbol, side, qty, price, order_id, description)
    SELECT $20, $1, 'fill', $15, $16, $2, $21, $22, $23, $6, $24 FROM {source}
), logged AS (
    {log_select("$1", "$25", _ORDER_EVENT.payload, f"FROM {source}")}
), queued AS (
    {queue_values_if(source, _ORDER_EVENT, _FILL_EVENT)}
)"""


# A taken fill: its rows are locked, so it is written as settled (`one` is one row).
BOOK_FILL_SQL = f"""
WITH one AS (SELECT), {_booking("one")}, marked AS (
    INSERT INTO tick_marks (symbol, sequence)
    SELECT $26::text, $27::bigint WHERE $27::bigint > 0
    ON CONFLICT (symbol) DO UPDATE SET sequence = greatest(tick_marks.sequence, $27::bigint)
)
SELECT (SELECT count(*) FROM placed) + (SELECT count(*) FROM charged) AS changed, {NOTIFY_SQL}
"""


def _settled_args(
    settled: SettledFill, events: tuple[OutgoingEvent, OutgoingEvent]
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The values of `_booking`'s parameters $1-$25, and of $28-$37."""
    fill, effect, order = settled.fill, settled.effect, settled.order
    order_event, fill_event = events
    position = effect.position
    return (
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
        fill.commission,
        settled.released,
        order.triggered,
        order.water_mark,
        settled.at,
        effect.cash_delta,
        effect.net_cost_delta,
        effect.gross_cost_delta,
        settled.buying_power,
        fill.fill_id,
        fill.side.value,
        fill.qty,
        fill.price,
        f"{fill.side.value.capitalize()} {fill.qty} {fill.symbol} @ {fill.price}",
        order_event.sequence,
    ), (*event_args(order_event), *event_args(fill_event))


async def book_fill(
    conn: asyncpg.Connection,
    settled: SettledFill,
    events: tuple[OutgoingEvent, OutgoingEvent],
    tick_mark: tuple[str, int] | None,
) -> None:
    """A taken fill's whole effect in one statement (one round trip).

    The position, the order, the account (last, as in every other transaction that
    changes it; `settled.buying_power` is the ledger's figure after the fill), the
    activity entry, the order event (numbered `events[0].sequence`, the one after
    the sequence `take_fill` found) kept for resumption, both outbox rows in this
    order (order event, then fill event: the relay publishes them in it), and the
    symbol's tick mark when the fill came from a tick. The rows were locked by
    `take_fill`, so the account's sequence cannot have moved; if it did, nothing of
    the fill may commit and this raises.
    """
    settling, queued = _settled_args(settled, events)
    changed = await conn.fetchval(BOOK_FILL_SQL, *settling, *(tick_mark or ("", 0)), *queued)
    if changed != 2:
        raise RuntimeError(
            f"fill {settled.fill.fill_id}: order {settled.order.order_id} or its account "
            "moved under its lock"
        )


# A fill booked as expected: recorded, and written, only if the account, the order and
# the position still hold the figures it was settled from ($26-$27, $38-$45); the
# account and the order are locked first. $46-$61: the fill's explanation.
BOOK_EXPECTED_FILL_SQL = f"""
WITH guard AS (
    SELECT 1 FROM accounts a JOIN orders o ON o.order_id = $6
    WHERE a.account_id = $1 AND a.event_seq = $25 - 1
      AND a.cash = $38 AND a.net_cost = $39 AND a.gross_cost = $40
      AND a.margin_multiplier = $41
      AND o.status = $42 AND o.fill_count = $43 AND o.reserved = $44 AND o.commission = $45
      AND coalesce((SELECT qty FROM positions WHERE account_id = $1 AND symbol = $2), 0) = $26
      AND coalesce((SELECT cost_basis FROM positions WHERE account_id = $1 AND symbol = $2), 0)
          = $27
    FOR UPDATE OF a, o
), recorded AS (
    INSERT INTO fills (fill_id, order_id, account_id, symbol, side, qty, price, commission,
                       occurred_at, price_source, tick_sequence, tick_ts_ns, market_price,
                       bid, ask, bid_size, ask_size, trade_price, trade_size, available_qty,
                       limit_price, displayed_size_only, slippage_bps, commission_per_share,
                       commission_bps)
    SELECT $20, $6, $1, $2, $21, $22, $23, $11, $15, $46, $47, $48, $49, $50, $51, $52, $53,
           $54, $55, $56, $57, $58, $59, $60, $61
    FROM guard
    ON CONFLICT DO NOTHING
    RETURNING fill_id
), {_booking("recorded")}
SELECT (SELECT count(*) FROM guard) AS guarded,
       (SELECT count(*) FROM placed) + (SELECT count(*) FROM charged) AS changed,
       CASE WHEN EXISTS (SELECT FROM recorded) THEN {NOTIFY_SQL} END AS woken
"""


async def book_expected_fill(
    conn: asyncpg.Connection,
    expected: TakenFill,
    settled: SettledFill,
    events: tuple[OutgoingEvent, OutgoingEvent],
) -> Booking:
    """Record and book a fill settled from `expected` figures: one statement, on its own.

    What `take_fill` then `book_fill` do in a transaction, provided the account, the
    order and the position still hold the figures the fill was settled from. When
    they do not, nothing is written (`Booking.MOVED`): take the fill the usual way.
    """
    settling, queued = _settled_args(settled, events)
    position = expected.position
    before, balances = expected.order, expected.balances
    row = await conn.fetchrow(
        BOOK_EXPECTED_FILL_SQL,
        *settling,
        position.qty,
        position.cost_basis,
        *queued,
        balances.cash,
        balances.net_cost,
        balances.gross_cost,
        balances.margin_multiplier,
        before.status.value,
        before.fill_count,
        before.reserved,
        expected.commission,
        *_explanation_args(settled.fill.explanation),
    )
    assert row is not None
    if not row["guarded"]:
        return Booking.MOVED
    if row["changed"] == 0:
        return Booking.APPLIED_BEFORE
    if row["changed"] != 2:
        raise RuntimeError(f"fill {settled.fill.fill_id}: order or account moved under its lock")
    return Booking.BOOKED


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


async def tick_marks(conn: asyncpg.Connection) -> dict[str, int]:
    return {row["symbol"]: row["sequence"] for row in await conn.fetch("SELECT * FROM tick_marks")}
