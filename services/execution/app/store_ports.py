"""What the use cases need from the service's own database and outbox, as typed protocols.

The use cases hold a `Stores` bundle and a `Database`, never a SQL module: the SQL
adapters (`services/execution/adapters/*_sql.py`, `events.py`, `wire.py`) satisfy
these protocols as modules, and `services/execution/__main__.py` hands them in
(`adapters/sql_stores.py: SQL_STORES`). A store call takes the connection the use
case opened, so one use case decides what one transaction covers.

Rows come back as read-only mappings of column name to value: the edge encodes them
as replies, and the use cases turn order rows into `Order`s with `OrderStore.order_from_row`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Protocol

from cift.trading.fills import Fill, FillExplanation, Quote, Trade
from cift.trading.intraday import DayFills
from cift.trading.ledger import Balances, FillEffect, Position
from cift.trading.orders import Order, OrderStatus
from cift.trading.vocabulary import Instrument
from services.execution.app.ports import OrderContext, OrderEventKind

# A stored row: column name → value.
Row = Mapping[str, Any]


class Connection(Protocol):
    """One database session; its transaction makes the store calls inside it one unit."""

    def transaction(self) -> AbstractAsyncContextManager[Any]: ...


class Database(Protocol):
    """Where connections come from (a pool)."""

    def acquire(self) -> AbstractAsyncContextManager[Any]: ...


class DuplicateClientOrderId(Exception):
    """A submitted order reuses its account's client_order_id; nothing of its batch was written."""


@dataclass(frozen=True, slots=True)
class StaleSequence:
    """The account's event sequence moved after the order's event was numbered.

    Nothing was written: number the event `next_sequence` and submit it again.
    """

    next_sequence: int


# Per order: the sequence of its written event, None when the account's buying power
# does not cover its reservation (nothing written), or StaleSequence.
Submitted = int | None | StaleSequence


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    """An event as the outbox stores it, prepared before the statement that writes it."""

    event_id: str
    topic: str
    schema_name: str
    payload: bytes
    headers_json: str
    # An order event's per-account sequence (also inside `payload`); 0 for other events.
    sequence: int = 0


@dataclass(frozen=True, slots=True)
class PageQuery:
    """Which page of an account's rows: a time range, the cursor after which to go on
    (the last row's time and id), and how many rows at most."""

    after: datetime | None
    until: datetime | None
    cursor: tuple[datetime, str] | None
    limit: int


class Booking(Enum):
    """How a fill settled from expected figures went (`FillStore.book_expected_fill`)."""

    BOOKED = "booked"
    APPLIED_BEFORE = "applied before"  # its fill id was recorded already: nothing changed
    MOVED = "moved"  # the figures it was settled from had changed: nothing was written


@dataclass(frozen=True, slots=True)
class TakenFill:
    """What a fill changes, as it stands before it: as `take_fill` recorded the fill and
    found (and locked) the rows, or as a booking expects to find them."""

    position: Position  # the fill's position before it
    order: Order  # the order before it
    balances: Balances  # the account's figures before it
    event_seq: int  # the account's last event sequence
    commission: Decimal  # the order's commission before it


@dataclass(frozen=True, slots=True)
class SettledFill:
    """A fill as the journal settled it, for the store to write."""

    fill: Fill
    effect: FillEffect  # the ledger's account of it
    order: Order  # the order after it
    released: Decimal  # the reservation it releases
    at: datetime
    buying_power: Decimal  # the ledger's figure for the account after it


class OrderStore(Protocol):
    """Orders, their instruments and water marks."""

    def order_from_row(self, row: Row) -> Order: ...

    async def submit_orders(
        self, conn: Connection, batch: Sequence[tuple[Order, OutgoingEvent]]
    ) -> dict[str, Submitted]:
        """Reserve, insert and announce each order in one statement.

        Raises `DuplicateClientOrderId` when one reuses a client_order_id.
        """
        ...

    async def insert_order(self, conn: Connection, order: Order) -> None: ...

    async def get_order(
        self, conn: Connection, order_id: str, *, for_update: bool = False
    ) -> Row | None: ...

    async def get_order_by_client_id(
        self, conn: Connection, account_id: str, client_order_id: str
    ) -> Row | None: ...

    async def legs_of(self, conn: Connection, parent_ids: list[str]) -> list[Row]: ...

    async def open_exits(
        self, conn: Connection, account_id: str, symbol: str, side: str
    ) -> list[str]: ...

    async def open_orders(self, conn: Connection, account_id: str | None = None) -> list[Row]: ...

    async def close_order(
        self,
        conn: Connection,
        order_id: str,
        status: OrderStatus,
        reason: str,
        at: datetime,
        replaced_by: str | None = None,
    ) -> None: ...

    async def release_leg(
        self, conn: Connection, order_id: str, qty: Decimal, at: datetime
    ) -> None: ...

    async def mark_triggered(
        self, conn: Connection, order_id: str, water_mark: Decimal | None, at: datetime
    ) -> None: ...

    async def save_water_marks(self, conn: Connection, marks: dict[str, Decimal]) -> None: ...

    async def record_order_event(
        self, conn: Connection, account_id: str, event: OutgoingEvent
    ) -> None: ...

    async def save_instrument(self, conn: Connection, instrument: Instrument) -> None: ...

    async def instruments(self, conn: Connection) -> dict[str, Instrument]: ...


class AccountStore(Protocol):
    """Accounts, their reservations and event sequence, and their positions."""

    async def open_account(
        self,
        conn: Connection,
        account_id: str,
        opening_cash: Decimal,
        multiplier: Decimal,
        buying_power: Decimal,
    ) -> bool: ...

    async def get_account(self, conn: Connection, account_id: str) -> Row | None: ...

    async def order_contexts(
        self, conn: Connection, wanted: Sequence[tuple[str, str, str]]
    ) -> list[OrderContext]: ...

    async def order_context(
        self, conn: Connection, account_id: str, symbol: str, client_order_id: str = ""
    ) -> OrderContext: ...

    async def reserve_buying_power(
        self, conn: Connection, account_id: str, amount: Decimal, events: int
    ) -> int | None: ...

    async def release_and_sequence(
        self, conn: Connection, account_id: str, released: Decimal, events: int
    ) -> int: ...

    async def unpriced_balances(self, conn: Connection) -> dict[str, Balances]: ...

    async def store_buying_power(self, conn: Connection, figures: dict[str, Decimal]) -> None: ...

    async def positions(self, conn: Connection, account_id: str) -> list[Row]: ...

    async def position(self, conn: Connection, account_id: str, symbol: str) -> Row | None: ...

    async def all_accounts_with_positions(self, conn: Connection) -> list[Row]: ...


class FillStore(Protocol):
    """Fills, the positions and cash they move, and the tick marks that make them idempotent."""

    async def take_fill(self, conn: Connection, fill: Fill, at: datetime) -> TakenFill | None:
        """Record the fill and lock what it changes; None if it was recorded before."""
        ...

    async def book_fill(
        self,
        conn: Connection,
        settled: SettledFill,
        events: tuple[OutgoingEvent, OutgoingEvent],
        tick_mark: tuple[str, int] | None,
    ) -> None:
        """Apply a taken fill to its position, order and account, with its activity entry,
        its (order event, fill event) queued in that order and the tick mark: one statement."""
        ...

    async def book_expected_fill(
        self,
        conn: Connection,
        expected: TakenFill,
        settled: SettledFill,
        events: tuple[OutgoingEvent, OutgoingEvent],
    ) -> Booking:
        """`take_fill` and `book_fill` in one statement, for a fill settled from `expected`
        figures: written only if the rows still hold them."""
        ...

    async def fills_of_orders(self, conn: Connection, order_ids: Sequence[str]) -> list[Row]: ...

    async def explanations(
        self, conn: Connection, fill_ids: Sequence[str]
    ) -> dict[str, FillExplanation]: ...

    async def day_fills(
        self, conn: Connection, account_id: str, since: datetime
    ) -> dict[str, DayFills]: ...

    async def tick_marks(self, conn: Connection) -> dict[str, int]: ...


class HistoryStore(Protocol):
    """Pages of orders and activities, the order-event log and equity history."""

    async def list_orders(
        self,
        conn: Connection,
        account_id: str,
        query: PageQuery,
        *,
        statuses: Sequence[str] | None,
        symbols: Sequence[str],
    ) -> list[Row]: ...

    async def list_activities(
        self, conn: Connection, account_id: str, query: PageQuery, *, types: Sequence[str]
    ) -> list[Row]: ...

    async def order_events_after(
        self, conn: Connection, account_id: str, sequence: int
    ) -> list[bytes]: ...

    async def insert_equity_snapshots(
        self, conn: Connection, rows: list[tuple[str, datetime, Decimal]]
    ) -> None: ...

    async def set_last_equity(self, conn: Connection, rows: list[tuple[str, Decimal]]) -> None: ...

    async def equity_history(
        self, conn: Connection, account_id: str, start: datetime, end: datetime
    ) -> list[Row]: ...


class Outbox(Protocol):
    """Events serialized as the outbox rows the stores write with the change they announce."""

    def order_event_row(
        self,
        order: Order,
        kind: OrderEventKind,
        sequence: int,
        *,
        fill: Fill | None = None,
        commission: Decimal | None = None,
    ) -> OutgoingEvent: ...

    def fill_event_row(self, fill: Fill, position: Position, cash: Decimal) -> OutgoingEvent: ...


# The market feed's raw records (opaque here) as the fill engine's ticks with their sequence.
TickDecoder = Callable[[list[Any]], list[tuple[Quote | Trade, int]]]


@dataclass(frozen=True, slots=True)
class Stores:
    """Every store port a use case may need, handed in once by the wiring."""

    orders: OrderStore
    accounts: AccountStore
    fills: FillStore
    history: HistoryStore
    outbox: Outbox
    decode_ticks: TickDecoder
