"""The books after a fault: what must hold in execution's ledger and on the fills topic.

Each check reads execution's schema in one repeatable-read snapshot, so it can run
while the load goes on: a fill changes the order, the position, the cash and the
reservation in one transaction, so every snapshot must balance. Each check returns
the list of what is wrong, one sentence per problem (empty when the books hold).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

import asyncpg

from cift.execution.v1 import events_pb2
from cift.runtime.kafka import TOPIC_FILLS, Event, EventConsumer

OPEN = ("new", "accepted", "partially_filled")

_ORDERS_AND_FILLS = """
SELECT o.order_id, o.account_id, o.client_order_id, o.order_type, o.status, o.qty, o.filled_qty, o.fill_count,
       o.reserved, coalesce(sum(f.qty), 0) AS fills_qty, count(f.fill_id) AS fills
FROM orders o LEFT JOIN fills f ON f.order_id = o.order_id
WHERE o.account_id = ANY($1::text[])
GROUP BY o.order_id
"""
_ACCOUNTS = """
SELECT a.account_id, a.cash, a.reserved,
       coalesce((SELECT sum(CASE f.side WHEN 'buy' THEN -f.qty * f.price ELSE f.qty * f.price END
                            - f.commission)
                 FROM fills f WHERE f.account_id = a.account_id), 0) AS fills_cash,
       coalesce((SELECT sum(o.reserved) FROM orders o
                 WHERE o.account_id = a.account_id AND o.status = ANY($2::text[])), 0)
           AS open_reserved
FROM accounts a WHERE a.account_id = ANY($1::text[])
"""
_POSITIONS = """
SELECT coalesce(p.account_id, f.account_id) AS account_id, coalesce(p.symbol, f.symbol) AS symbol,
       coalesce(p.qty, 0) AS qty, coalesce(f.qty, 0) AS fills_qty
FROM (SELECT * FROM positions WHERE account_id = ANY($1::text[])) p
FULL JOIN (SELECT account_id, symbol, sum(CASE side WHEN 'buy' THEN qty ELSE -qty END) AS qty
           FROM fills WHERE account_id = ANY($1::text[]) GROUP BY account_id, symbol) f
  ON f.account_id = p.account_id AND f.symbol = p.symbol
"""


async def snapshot_problems(
    database_url: str,
    accounts: list[str],
    confirmed: Mapping[str, tuple[str, str]],
    opening_cash: Decimal,
) -> list[str]:
    """Everything wrong in one consistent snapshot of execution's books."""
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "execution"})
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            orders = await conn.fetch(_ORDERS_AND_FILLS, accounts)
            balances = await conn.fetch(_ACCOUNTS, accounts, list(OPEN))
            positions = await conn.fetch(_POSITIONS, accounts)
    finally:
        await conn.close()
    problems = confirmed_problems(confirmed, orders)
    problems += fill_problems(orders)
    for row in balances:
        account = row["account_id"]
        if row["cash"] != opening_cash + row["fills_cash"]:
            problems.append(
                f"{account}: cash {row['cash']} is not opening cash {opening_cash} "
                f"{row['fills_cash']:+} from its fills"
            )
        if row["reserved"] != row["open_reserved"]:
            problems.append(
                f"{account}: reserved {row['reserved']} is not the open orders' "
                f"{row['open_reserved']}"
            )
    for row in positions:
        if row["qty"] != row["fills_qty"]:
            problems.append(
                f"{row['account_id']} {row['symbol']}: position {row['qty']} is not the "
                f"sum of its fills {row['fills_qty']}"
            )
    return problems


def confirmed_problems(
    confirmed: Mapping[str, tuple[str, str]], orders: Iterable[asyncpg.Record]
) -> list[str]:
    """Every order a client got a 2xx for exists, once, on its account.

    Once: a retry after a lost answer carries the same client order id, so two orders
    under one client order id on an account are a duplicate the client never asked for.
    """
    rows = list(orders)
    stored = {row["order_id"]: row["account_id"] for row in rows}
    placed = Counter((row["account_id"], row["client_order_id"]) for row in rows)
    problems = [
        f"client order {client_order_id} on {account} is duplicated: {count} orders"
        for (account, client_order_id), count in sorted(placed.items())
        if count > 1
    ]
    for order_id, (account, client_order_id) in confirmed.items():
        if order_id not in stored:
            problems.append(f"order {order_id} ({client_order_id}) was confirmed but is lost")
        elif stored[order_id] != account:
            problems.append(f"order {order_id} is on {stored[order_id]}, not {account}")
    return problems


def fill_problems(orders: Iterable[asyncpg.Record]) -> list[str]:
    """Each order's fills are counted once: no double fill, no lost fill, none over its size."""
    problems = []
    for row in orders:
        order = row["order_id"]
        if row["filled_qty"] != row["fills_qty"] or row["fill_count"] != row["fills"]:
            problems.append(
                f"order {order}: filled {row['filled_qty']} in {row['fill_count']} fills, "
                f"but its fills sum to {row['fills_qty']} in {row['fills']}"
            )
        if row["qty"] is not None and row["fills_qty"] > row["qty"]:
            problems.append(f"order {order}: filled {row['fills_qty']} of {row['qty']}")
        if row["status"] == "filled" and row["filled_qty"] != row["qty"]:
            problems.append(f"order {order}: filled with {row['filled_qty']} of {row['qty']}")
        if row["status"] not in OPEN and row["reserved"] != 0:
            problems.append(f"order {order}: {row['status']} but still reserves {row['reserved']}")
    return problems


async def settled_problems(database_url: str, accounts: list[str]) -> list[str]:
    """Once the load stopped and the engine caught up: no order in `new`, no market order open."""
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "execution"})
    try:
        rows = await conn.fetch(
            """SELECT order_id, order_type, status FROM orders
               WHERE account_id = ANY($1::text[])
                 AND (status = 'new' OR (order_type = 'market' AND status = ANY($2::text[])))""",
            accounts,
            list(OPEN),
        )
    finally:
        await conn.close()
    return [f"order {r['order_id']} ({r['order_type']}) is stuck in {r['status']}" for r in rows]


async def fill_ids(database_url: str, accounts: list[str]) -> set[str]:
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "execution"})
    try:
        rows = await conn.fetch(
            "SELECT fill_id FROM fills WHERE account_id = ANY($1::text[])", accounts
        )
    finally:
        await conn.close()
    return {row["fill_id"] for row in rows}


@dataclass
class FillsTopic:
    """A consumer of execution.fills.v1 for the whole run: which fills arrived, how often."""

    bootstrap: str
    accounts: set[str]
    seen: Counter[str] = field(default_factory=Counter)
    _task: asyncio.Task[None] | None = None
    _consumer: EventConsumer | None = None

    async def start(self) -> None:
        # events_pb2 is imported so the consumer can decode FillEvent by its schema header.
        assert events_pb2.FillEvent.DESCRIPTOR.full_name
        self._consumer = EventConsumer(
            self.bootstrap, "fault-suite", f"fault-suite-{id(self)}", [TOPIC_FILLS]
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._consumer.run(self._record))

    async def _record(self, events: list[Event]) -> None:
        for event in events:
            message = event.message
            if (
                isinstance(message, events_pb2.FillEvent)
                and message.fill.account_id in self.accounts
            ):
                self.seen[message.fill.id] += 1

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    def problems(self, stored: set[str]) -> list[str]:
        """Every stored fill reached the topic; none that is not stored did."""
        missing = stored - set(self.seen)
        extra = set(self.seen) - stored
        problems = [f"fill {fill} never reached {TOPIC_FILLS}" for fill in sorted(missing)]
        problems += [f"fill {fill} on {TOPIC_FILLS} is not in the books" for fill in sorted(extra)]
        return problems

    @property
    def duplicates(self) -> int:
        """Deliveries beyond the first (re-relays after a broker restart); consumers dedupe."""
        return sum(count - 1 for count in self.seen.values())
