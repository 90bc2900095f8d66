"""Everything a pre-trade check looks at, frozen at the moment of the check.

The edge assembles one snapshot per order from its caches (instrument, latest
quote, limits, trading states, positions from fills, the rate-limit answer from
Redis) and from the figures the caller sends (buying power, open orders). Rules
read only this, so a check is a pure function of (order, snapshot).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from cift.trading.pretrade.limits import RiskLimits
from cift.trading.pretrade.quote import Quote
from cift.trading.pretrade.token_bucket import RateDecision
from cift.trading.pretrade.trading_state import TradingState
from cift.trading.vocabulary import Instrument

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class CheckSnapshot:
    now_ns: int
    limits: RiskLimits
    # Buying power still free, as the caller (execution) computed it: already net
    # of the reservations of the account's open orders.
    buying_power: Decimal
    instrument: Instrument | None
    quote: Quote | None = None
    account_state: TradingState = TradingState.ACTIVE
    venue_state: TradingState = TradingState.ACTIVE
    # Signed: positive long, negative short, in the order's symbol.
    position_qty: Decimal = ZERO
    # Resting orders of the account in the order's symbol, by side (unsigned).
    open_buy_qty: Decimal = ZERO
    open_sell_qty: Decimal = ZERO
    # Resting orders of the account in every symbol.
    open_order_count: int = 0
    # Sum over the account's positions of |qty| x mark.
    gross_exposure: Decimal = ZERO
    # Buying power the caller will reserve for this order, when it sent one; it
    # takes precedence over risk's own estimate, since that is what gets reserved.
    caller_order_cost: Decimal | None = None
    # The token bucket's answer; None when the rate was not consulted.
    rate: RateDecision | None = None


class SnapshotView(Protocol):
    """What the rules read of a snapshot: `CheckSnapshot`'s fields, by name.

    The risk service builds a `CheckSnapshot` per check. The backtest's gate keeps
    one mutable view of its account instead and sets the figures that changed
    before each check, so a check costs the rules, not a new 14-field object.
    """

    @property
    def now_ns(self) -> int: ...
    @property
    def limits(self) -> RiskLimits: ...
    @property
    def buying_power(self) -> Decimal: ...
    @property
    def instrument(self) -> Instrument | None: ...
    @property
    def quote(self) -> Quote | None: ...
    @property
    def account_state(self) -> TradingState: ...
    @property
    def venue_state(self) -> TradingState: ...
    @property
    def position_qty(self) -> Decimal: ...
    @property
    def open_buy_qty(self) -> Decimal: ...
    @property
    def open_sell_qty(self) -> Decimal: ...
    @property
    def open_order_count(self) -> int: ...
    @property
    def gross_exposure(self) -> Decimal: ...
    @property
    def caller_order_cost(self) -> Decimal | None: ...
    @property
    def rate(self) -> RateDecision | None: ...
