"""What the fill engine reads and what it reports: ticks in, fills and order events out.

Plain values, so the edge can persist them and the backtest can count them
without knowing how the engine decided. They are made once and only read after,
but not declared frozen: a frozen dataclass pays an `object.__setattr__` call per
field when it is built, three to four times the cost of plain slots, and a tick,
a fill and its explanation are built for every order a backtest replays.

A `Fill` carries its `FillExplanation`: the tick whose prices it took and the
model settings that turned them into its price, size and commission, so a trader
can check why a paper fill happened where it did. No logic and no I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from cift.trading.orders import OrderStatus
from cift.trading.vocabulary import Side


@dataclass(slots=True)
class Quote:
    symbol: str
    bid: Decimal
    ask: Decimal
    bid_size: Decimal
    ask_size: Decimal
    ts_ns: int
    # Position in the market data tick log (0: the source numbers none, e.g. a backtest bar).
    sequence: int = 0


@dataclass(slots=True)
class Trade:
    symbol: str
    price: Decimal
    size: Decimal
    ts_ns: int
    sequence: int = 0


@dataclass(frozen=True, slots=True)
class OpenOrders:
    """An account's open orders as pre-trade checks see them.

    Frozen, so the answer for an account without open orders is one shared value
    (`NO_OPEN_ORDERS`), not a new one per order checked.
    """

    buy_qty: Decimal  # unfilled shares of open buys in the symbol asked about
    sell_qty: Decimal  # the same for sells
    count: int  # open orders in every symbol


NO_OPEN_ORDERS = OpenOrders(Decimal(0), Decimal(0), 0)


class PriceSource(StrEnum):
    """Which market price a fill took."""

    QUOTE = "quote"  # the opposite side of the quote: a buy the ask, a sell the bid
    OPENING_AUCTION = "opening_auction"  # the session's first trade
    CLOSING_AUCTION = "closing_auction"  # the session's last trade


@dataclass(slots=True)
class FillExplanation:
    """Why a fill has its price, size and commission.

    `market_price` is the price taken before slippage and tick rounding; the
    fill price is it moved by `slippage_bps` against the trader, rounded to the
    tick away from the trader, then capped by `limit_price`. `available_qty` is
    the displayed size left on the quote's side when the fill took it, set only
    when the model fills at displayed size (then the fill is at most that).
    The quote fields are those of the last quote seen (for auction fills too,
    for reference); the trade fields are those of the print an auction crossed at.
    """

    source: PriceSource
    tick_sequence: int
    tick_ts_ns: int
    market_price: Decimal
    bid: Decimal | None = None
    ask: Decimal | None = None
    bid_size: Decimal | None = None
    ask_size: Decimal | None = None
    trade_price: Decimal | None = None
    trade_size: Decimal | None = None
    available_qty: Decimal | None = None
    limit_price: Decimal | None = None
    displayed_size_only: bool = False
    slippage_bps: Decimal = Decimal(0)
    commission_per_share: Decimal = Decimal(0)
    commission_bps: Decimal = Decimal(0)


@dataclass(slots=True)
class Fill:
    """One execution, with the order's progress right after it (what the edge persists)."""

    fill_id: str
    order_id: str
    account_id: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    commission: Decimal
    ts_ns: int
    order_status: OrderStatus
    order_filled_qty: Decimal
    order_filled_notional: Decimal
    order_fill_count: int
    explanation: FillExplanation | None = None


@dataclass(frozen=True, slots=True)
class OrderClosed:
    """An order left the book without (further) fills: IOC remainder, FOK kill, expiry."""

    order_id: str
    account_id: str
    status: OrderStatus
    reason: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class OrderTriggered:
    """A stop, stop-limit or trailing stop armed; it now works as market or limit."""

    order_id: str
    account_id: str
    ts_ns: int
    water_mark: Decimal | None = None


@dataclass(frozen=True, slots=True)
class LegReleased:
    """An exit leg entered the book (it was held) or grew: it now works for `qty` in all."""

    order_id: str
    account_id: str
    qty: Decimal
    ts_ns: int


EngineEvent = Fill | OrderClosed | OrderTriggered | LegReleased
