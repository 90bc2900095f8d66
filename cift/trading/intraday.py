"""What a position did since the previous close: lastday_price, change_today, intraday P&L.

The trading day. Market data's 1Day bars are UTC days, each holding a whole US
regular session, so the previous close is the close of the last daily bar that
started before the current trading day's UTC midnight. While the market is open
the trading day is today's UTC date; once it has closed it is the next session's,
so the day's figures reset at the close, the moment the account's last_equity
(and with it day_pl) is rolled. A calendar that never closes (the simulator's
default) rolls at UTC midnight instead. A daily bar's close is its last trade of
that UTC day, so after-hours trades before midnight count as the close. With no
daily bar before the trading day (a new listing, a simulator started today) no
previous close is known: lastday_price and change_today are left empty, and so is
unrealized_intraday_pl unless the whole position is today's.

Which shares are today's. The ledger keeps one average cost per position, not
lots, so the shares held since before the trading day are found from the day's
fills, first in first out: a day's closing fills close the oldest shares first,
and every share its opening fills added is today's. Shares held overnight are
compared with the previous close, today's with what they cost. A position that
reversed or was closed and reopened today is entirely today's, and its intraday
P&L is its unrealized P&L (no previous close needed for it).

This module is pure: no I/O, no clock of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from cift.trading.ledger import Position
from cift.trading.money import to_cents, to_ratio
from cift.trading.vocabulary import ZERO

NS_PER_DAY = 86_400 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class TradingDay:
    """Where the current trading day starts, and until when that answer holds."""

    start_ns: int  # UTC midnight: fills from here on are today's, bars before it are history
    valid_until_ns: int


def trading_day(
    *, now_ns: int, is_open: bool, next_open_ns: int | None, next_close_ns: int | None
) -> TradingDay:
    """The trading day the market clock is in; it changes only when a session closes."""
    if is_open or next_open_ns is None:
        start = now_ns - now_ns % NS_PER_DAY
    else:
        start = next_open_ns - next_open_ns % NS_PER_DAY
    # While closed, next_close is the next session's: the day holds through that session.
    until = next_close_ns if next_close_ns is not None else start + NS_PER_DAY
    return TradingDay(start, until)


@dataclass(frozen=True, slots=True)
class DayFills:
    """One symbol's fills of one account since the trading day started, per side.

    Amounts are the sum of each fill's qty x price in cents, as the ledger books them.
    """

    bought_qty: Decimal = ZERO
    bought_amount: Decimal = ZERO
    sold_qty: Decimal = ZERO
    sold_amount: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class IntradayFigures:
    """None where the figure is unknown (no previous close, or no current price)."""

    lastday_price: Decimal | None
    change_today: Decimal | None  # fraction, 6 decimals like unrealized_plpc
    unrealized_intraday_pl: Decimal | None  # cents


def carried_qty(qty: Decimal, today: DayFills) -> Decimal:
    """The part of the signed `qty` held since before the trading day (first in, first out)."""
    start = qty - (today.bought_qty - today.sold_qty)
    if start * qty <= 0:
        return ZERO  # opened today, or reversed since the start of the day
    closed_today = today.sold_qty if qty > 0 else today.bought_qty
    kept = min(abs(qty), max(ZERO, abs(start) - closed_today))
    return kept if qty > 0 else -kept


def intraday_figures(
    position: Position,
    mark: Decimal | None,
    lastday_price: Decimal | None,
    today: DayFills,
) -> IntradayFigures:
    """lastday_price, change_today and unrealized_intraday_pl of an open position.

    unrealized_intraday_pl = carried x (mark - lastday_price) + what today's shares
    gained over their cost, each leg rounded to the cent like market value.
    """
    if mark is None:
        return IntradayFigures(lastday_price, None, None)
    change = to_ratio(mark / lastday_price - 1) if lastday_price else None
    carried = carried_qty(position.qty, today)
    if carried == 0:
        return IntradayFigures(lastday_price, change, position.unrealized_pnl(mark))
    if lastday_price is None:
        return IntradayFigures(None, None, None)
    pl = to_cents(carried * mark) - to_cents(carried * lastday_price)
    # Every share today's opening fills added is still held (FIFO): they are the rest.
    fresh = position.qty - carried
    if fresh > 0:
        pl += to_cents(fresh * mark) - today.bought_amount
    elif fresh < 0:
        pl += to_cents(fresh * mark) + today.sold_amount
    return IntradayFigures(lastday_price, change, pl)
