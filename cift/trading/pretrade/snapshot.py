"""Everything a pre-trade check looks at, frozen at the moment of the check.

The edge assembles one snapshot per order from its caches (instrument, latest
quote, limits, trading states, positions from fills, the rate-limit answer from
Redis) and from the figures the caller sends (buying power, open orders). Rules
read only this, so a check is a pure function of (order, snapshot).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

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
