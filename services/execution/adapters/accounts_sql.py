"""SQL of the account aggregate: cash, reservations, event sequence, positions.

The reservation is atomic here (a conditional UPDATE); its figure is computed by the
ledger (`cift/trading/ledger.py`), never in SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import asyncpg

from cift.trading.ledger import Balances, Position
from services.execution.app.ports import OrderContext


async def open_account(
    conn: asyncpg.Connection,
    account_id: str,
    opening_cash: Decimal,
    multiplier: Decimal,
    buying_power: Decimal,
) -> bool:
    """Create the account with its opening deposit; False when it already existed.

    The deposit is also the first point of the account's portfolio history, so a
    new account's history starts when the account does rather than at the first
    periodic snapshot (what a trader charting a fresh account expects to see).
    """
    async with conn.transaction():
        status = await conn.execute(
            """INSERT INTO accounts (account_id, cash, margin_multiplier, last_equity, buying_power)
               VALUES ($1, $2, $3, $2, $4) ON CONFLICT DO NOTHING""",
            account_id,
            opening_cash,
            multiplier,
            buying_power,
        )
        if status != "INSERT 0 1":
            return False
        await conn.execute(
            """INSERT INTO activities (activity_id, account_id, activity_type, occurred_at,
                                       net_amount, description)
               VALUES ($1, $2, 'deposit', now(), $3, 'Opening deposit')""",
            f"deposit-{account_id}",
            account_id,
            opening_cash,
        )
        await conn.execute(
            "INSERT INTO equity_snapshots (account_id, taken_at, equity) VALUES ($1, now(), $2)",
            account_id,
            opening_cash,
        )
        return True


async def get_account(conn: asyncpg.Connection, account_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM accounts WHERE account_id = $1", account_id)


CONTEXT_SQL = """
SELECT i.n, a.buying_power, a.reserved, a.gross_cost, a.event_seq,
       a.cash, a.net_cost, a.margin_multiplier,
       (SELECT order_id FROM orders
        WHERE account_id = i.account_id AND client_order_id = i.client_order_id
       ) AS existing_order_id,
       coalesce(p.qty, 0) AS position_qty, coalesce(p.cost_basis, 0) AS position_cost_basis
FROM unnest($1::text[], $2::text[], $3::text[])
         WITH ORDINALITY AS i(account_id, symbol, client_order_id, n)
JOIN accounts a ON a.account_id = i.account_id
LEFT JOIN positions p ON p.account_id = i.account_id AND p.symbol = i.symbol
ORDER BY i.n
"""


async def order_contexts(
    conn: asyncpg.Connection, wanted: Sequence[tuple[str, str, str]]
) -> list[OrderContext]:
    """What pre-trade checks need from the ledger, for many (account, symbol, client_order_id).

    Per item: the account's stored buying power, reservations, figures (`Balances`)
    and last event sequence, the position and the order already submitted under that
    client_order_id (idempotent resubmission). One round trip for all of them,
    answers in the given order. Open orders are not read here: the fill engine
    holds every one of them (`FillEngine.open_orders_of`), and counting them from
    the table cost a scan of the account's open orders per order.
    """
    rows = await conn.fetch(
        CONTEXT_SQL,
        [w[0] for w in wanted],
        [w[1] for w in wanted],
        [w[2] for w in wanted],
    )
    assert len(rows) == len(wanted), "accounts are opened before any order reaches the store"
    return [
        OrderContext(
            buying_power=row["buying_power"],
            reserved=row["reserved"],
            gross_cost=row["gross_cost"],
            event_seq=row["event_seq"],
            position_qty=row["position_qty"],
            existing_order_id=row["existing_order_id"],
            balances=Balances(
                row["cash"], row["net_cost"], row["gross_cost"], row["margin_multiplier"]
            ),
            position=Position(symbol, row["position_qty"], row["position_cost_basis"]),
        )
        for (_, symbol, _), row in zip(wanted, rows, strict=True)
    ]


async def order_context(
    conn: asyncpg.Connection, account_id: str, symbol: str, client_order_id: str = ""
) -> OrderContext:
    """`order_contexts` for one order."""
    return (await order_contexts(conn, [(account_id, symbol, client_order_id)]))[0]


async def reserve_buying_power(
    conn: asyncpg.Connection, account_id: str, amount: Decimal, events: int
) -> int | None:
    """Hold `amount` of buying power atomically; None when there is not enough.

    PostgreSQL serializes updates of one row, so concurrent orders of an account
    can never reserve more than it has. The buying power compared against is the
    ledger's figure stored with the row. Also claims `events` order-event sequence
    numbers and returns the last one.
    """
    value: int | None = await conn.fetchval(
        """UPDATE accounts
           SET reserved = reserved + $2::numeric, event_seq = event_seq + $3, updated_at = now()
           WHERE account_id = $1
             AND ($2::numeric = 0 OR buying_power - reserved >= $2::numeric)
           RETURNING event_seq""",
        account_id,
        amount,
        events,
    )
    return value


async def release_and_sequence(
    conn: asyncpg.Connection, account_id: str, released: Decimal, events: int
) -> int:
    """Give back reserved buying power and claim `events` sequence numbers."""
    value: int = await conn.fetchval(
        """UPDATE accounts
           SET reserved = greatest(0, reserved - $2), event_seq = event_seq + $3, updated_at = now()
           WHERE account_id = $1 RETURNING event_seq""",
        account_id,
        released,
        events,
    )
    return value


async def unpriced_balances(conn: asyncpg.Connection) -> dict[str, Balances]:
    """Accounts whose buying power was never stored (opened before it was), locked until commit."""
    rows = await conn.fetch(
        """SELECT account_id, cash, net_cost, gross_cost, margin_multiplier FROM accounts
           WHERE buying_power IS NULL ORDER BY account_id FOR UPDATE"""
    )
    return {
        row["account_id"]: Balances(
            row["cash"], row["net_cost"], row["gross_cost"], row["margin_multiplier"]
        )
        for row in rows
    }


async def store_buying_power(conn: asyncpg.Connection, figures: dict[str, Decimal]) -> None:
    await conn.executemany(
        "UPDATE accounts SET buying_power = $2 WHERE account_id = $1", sorted(figures.items())
    )


async def positions(conn: asyncpg.Connection, account_id: str) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            "SELECT * FROM positions WHERE account_id = $1 AND qty <> 0 ORDER BY symbol", account_id
        )
    )


async def position(conn: asyncpg.Connection, account_id: str, symbol: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM positions WHERE account_id = $1 AND symbol = $2 AND qty <> 0",
        account_id,
        symbol,
    )


async def all_accounts_with_positions(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            """SELECT a.account_id, a.cash,
                      coalesce(array_agg(p.symbol) FILTER (WHERE p.qty <> 0), '{}') AS symbols,
                      coalesce(array_agg(p.qty) FILTER (WHERE p.qty <> 0), '{}') AS qtys,
                      coalesce(array_agg(p.cost_basis) FILTER (WHERE p.qty <> 0), '{}') AS costs
               FROM accounts a LEFT JOIN positions p ON p.account_id = a.account_id
               GROUP BY a.account_id, a.cash"""
        )
    )
