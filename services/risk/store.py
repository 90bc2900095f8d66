"""SQL of the risk schema: limit overrides, trading states, positions from fills.

Nothing but SQL lives here; callers pass a connection when the statement must
share a transaction (with the outbox event of the same change).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from cift.trading.pretrade.limits import LimitOverrides
from cift.trading.pretrade.trading_state import TradingState

GLOBAL_ACCOUNT = "*"

_LIMIT_COLUMNS = (
    "max_order_qty",
    "max_order_notional",
    "max_position_qty",
    "max_position_notional",
    "max_gross_exposure",
    "max_open_orders",
    "price_collar_pct",
    "max_quote_age_s",
    "orders_per_second",
    "order_burst",
    "allow_notional_orders",
    "allow_short",
)


@dataclass(frozen=True, slots=True)
class StoredOverrides:
    account_id: str
    overrides: LimitOverrides
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class StoredState:
    account_id: str
    state: TradingState
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class StoredPosition:
    account_id: str
    symbol: str
    qty: Decimal
    last_fill_price: Decimal
    updated_at: datetime


def _overrides(row: asyncpg.Record) -> StoredOverrides:
    values: dict[str, Any] = {name: row[name] for name in _LIMIT_COLUMNS}
    return StoredOverrides(row["account_id"], LimitOverrides(**values), row["updated_at"])


def _state(row: asyncpg.Record) -> StoredState:
    return StoredState(row["account_id"], TradingState[row["state"].upper()], row["updated_at"])


_SELECT_LIMITS = f"SELECT account_id, updated_at, {', '.join(_LIMIT_COLUMNS)} FROM account_limits"


async def overrides_changed_since(conn: Any, since: datetime | None) -> list[StoredOverrides]:
    if since is None:
        rows = await conn.fetch(_SELECT_LIMITS)
    else:
        rows = await conn.fetch(_SELECT_LIMITS + " WHERE updated_at > $1", since)
    return [_overrides(row) for row in rows]


async def overrides_for(conn: Any, account_id: str) -> LimitOverrides:
    row = await conn.fetchrow(_SELECT_LIMITS + " WHERE account_id = $1", account_id)
    return _overrides(row).overrides if row is not None else LimitOverrides()


async def lock_overrides(conn: Any, account_id: str) -> LimitOverrides:
    """The account's overrides, row-locked until the transaction ends (serializes admins)."""
    await conn.execute(
        "INSERT INTO account_limits (account_id) VALUES ($1) ON CONFLICT DO NOTHING", account_id
    )
    row = await conn.fetchrow(_SELECT_LIMITS + " WHERE account_id = $1 FOR UPDATE", account_id)
    return _overrides(row).overrides


async def save_overrides(
    conn: Any, account_id: str, overrides: LimitOverrides, actor: str
) -> datetime:
    assignments = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(_LIMIT_COLUMNS))
    values = [getattr(overrides, name) for name in _LIMIT_COLUMNS]
    updated_at: datetime = await conn.fetchval(
        f"""UPDATE account_limits
               SET {assignments}, updated_by = ${len(values) + 2}, updated_at = clock_timestamp()
             WHERE account_id = $1
         RETURNING updated_at""",
        account_id,
        *values,
        actor,
    )
    return updated_at


async def states_changed_since(conn: Any, since: datetime | None) -> list[StoredState]:
    query = "SELECT account_id, state, updated_at FROM trading_states"
    rows = await (
        conn.fetch(query) if since is None else conn.fetch(query + " WHERE updated_at > $1", since)
    )
    return [_state(row) for row in rows]


async def state_for(conn: Any, account_id: str) -> StoredState | None:
    row = await conn.fetchrow(
        "SELECT account_id, state, updated_at FROM trading_states WHERE account_id = $1", account_id
    )
    return _state(row) if row is not None else None


async def set_state(
    conn: Any, account_id: str, state: TradingState, reason: str, actor: str
) -> tuple[TradingState, datetime]:
    """Set the state inside the caller's transaction; returns the previous state and the time."""
    await conn.execute(
        "INSERT INTO trading_states (account_id, state) VALUES ($1, 'active') ON CONFLICT DO NOTHING",
        account_id,
    )
    previous = await conn.fetchval(
        "SELECT state FROM trading_states WHERE account_id = $1 FOR UPDATE", account_id
    )
    updated_at: datetime = await conn.fetchval(
        """UPDATE trading_states
              SET state = $2, reason = $3, updated_by = $4, updated_at = clock_timestamp()
            WHERE account_id = $1
        RETURNING updated_at""",
        account_id,
        state.name.lower(),
        reason,
        actor,
    )
    await conn.execute(
        """INSERT INTO trading_state_changes (account_id, previous_state, state, reason, changed_by)
           VALUES ($1, $2, $3, $4, $5)""",
        account_id,
        previous,
        state.name.lower(),
        reason,
        actor,
    )
    return TradingState[str(previous).upper()], updated_at


async def positions_changed_since(conn: Any, since: datetime | None) -> list[StoredPosition]:
    query = "SELECT account_id, symbol, qty, last_fill_price, updated_at FROM positions"
    rows = await (
        conn.fetch(query) if since is None else conn.fetch(query + " WHERE updated_at > $1", since)
    )
    return [
        StoredPosition(
            r["account_id"], r["symbol"], r["qty"], r["last_fill_price"], r["updated_at"]
        )
        for r in rows
    ]


async def set_position(
    conn: Any, account_id: str, symbol: str, qty: Decimal, fill_price: Decimal
) -> None:
    await conn.execute(
        """INSERT INTO positions (account_id, symbol, qty, last_fill_price)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (account_id, symbol)
           DO UPDATE SET qty = EXCLUDED.qty, last_fill_price = EXCLUDED.last_fill_price,
                         updated_at = clock_timestamp()""",
        account_id,
        symbol,
        qty,
        fill_price,
    )
