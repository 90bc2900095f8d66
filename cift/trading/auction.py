"""Session terms of an order: auction cutoffs and prices, GTD expiry, extended hours.

The paper auction model (docs/ORDER-CLASSES.md):

- An `opg` order executes only in the opening auction: at the first trade price of
  the session, for its whole quantity (a paper auction has no queue to share);
  a market order always, a limit order when that price is at or better than its
  limit. One that does not cross expires then. It is accepted while the market is
  closed, until `OPENING_CUTOFF_NS` before the open (Alpaca's 09:28 ET).
- A `cls` order executes only in the closing auction: at the session's last trade
  price, by the same rule; accepted until `CLOSING_CUTOFF_NS` before the close
  (Alpaca's 15:50 ET), or while the market is closed for the next session.
- A `gtd` order expires at its `expire_ns`.
- An extended-hours limit day order keeps working after the regular close until
  the post-market session ends (`POST_SESSION_NS` after the close: 16:00-20:00 ET
  on the nyse calendar); other day orders expire at the close.
- Outside the regular session only extended-hours orders trade, and only in the
  pre-market (`PRE_SESSION_NS` before the open: 04:00-09:30 ET) and post-market
  sessions; everything else rests until the open (`SessionPhase`).

Auctions need a clock with sessions: with an always-open clock there is no open
or close to hold them at, so opg and cls are refused. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from cift.trading.orders import Order
from cift.trading.vocabulary import OrderType, Side, TimeInForce

MINUTE_NS = 60 * 1_000_000_000
OPENING_CUTOFF_NS = 2 * MINUTE_NS
CLOSING_CUTOFF_NS = 10 * MINUTE_NS
POST_SESSION_NS = 240 * MINUTE_NS
PRE_SESSION_NS = 330 * MINUTE_NS


class SessionPhase(Enum):
    """Which orders a tick may fill: all in the regular session, extended-hours ones in
    the pre- and post-market, none while the market is closed."""

    REGULAR = "regular"
    PRE_MARKET = "pre_market"
    POST_MARKET = "post_market"
    CLOSED = "closed"

    @property
    def extended(self) -> bool:
        return self in (SessionPhase.PRE_MARKET, SessionPhase.POST_MARKET)


@dataclass(frozen=True, slots=True)
class SessionClock:
    """The market clock as order entry needs it (None: the calendar never opens or closes)."""

    now_ns: int
    is_open: bool
    next_open_ns: int | None
    next_close_ns: int | None


def auction_refusal(time_in_force: TimeInForce, clock: SessionClock) -> str | None:
    """Why an opg or cls order cannot be accepted now (None when it can)."""
    if time_in_force is TimeInForce.OPG:
        if clock.next_open_ns is None or clock.next_close_ns is None:
            return (
                "opg orders need a market calendar with an opening auction; this one never opens."
            )
        if clock.is_open:
            return "The opening auction has passed; opg orders are accepted while the market is closed."
        if clock.now_ns >= clock.next_open_ns - OPENING_CUTOFF_NS:
            return "opg orders are accepted until 2 minutes before the open; the cutoff has passed."
    elif time_in_force is TimeInForce.CLS:
        if clock.next_close_ns is None:
            return (
                "cls orders need a market calendar with a closing auction; this one never closes."
            )
        if clock.is_open and clock.now_ns >= clock.next_close_ns - CLOSING_CUTOFF_NS:
            return (
                "cls orders are accepted until 10 minutes before the close; the cutoff has passed."
            )
    return None


def session_phase(clock: SessionClock, post_market_end_ns: int | None) -> SessionPhase:
    """The phase the market clock reads now.

    `post_market_end_ns` is when the post-market of the last close seen ends (None:
    no close seen, so no post-market is known to be running). An always-open clock
    is always regular.
    """
    if clock.is_open:
        return SessionPhase.REGULAR
    if post_market_end_ns is not None and clock.now_ns < post_market_end_ns:
        return SessionPhase.POST_MARKET
    if clock.next_open_ns is not None and clock.next_open_ns - clock.now_ns <= PRE_SESSION_NS:
        return SessionPhase.PRE_MARKET
    return SessionPhase.CLOSED


def next_change_ns(clock: SessionClock, post_market_end_ns: int | None) -> int | None:
    """The next instant the session's phase or auctions change (None: none is known).

    The session watcher sleeps no longer than until then, so a phase starts on time
    rather than at the watcher's next regular poll.
    """
    candidates = [
        clock.next_close_ns,
        clock.next_open_ns,
        post_market_end_ns,
        None if clock.next_open_ns is None else clock.next_open_ns - PRE_SESSION_NS,
    ]
    ahead = [at for at in candidates if at is not None and at > clock.now_ns]
    return min(ahead, default=None)


def crosses(order: Order, price: Decimal) -> bool:
    """Whether `order` executes at the auction `price`: market always, limit at or better."""
    if order.order_type is OrderType.MARKET or order.limit_price is None:
        return True
    return price <= order.limit_price if order.side is Side.BUY else price >= order.limit_price


def post_session_end_ns(close_ns: int) -> int:
    """When extended-hours day orders expire, given the regular session's close."""
    return close_ns + POST_SESSION_NS
