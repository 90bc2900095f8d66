"""Trading states of an account and of the whole venue (the kill switch).

Modelled on professional engines' trading states:
- ACTIVE: orders pass on to the other rules.
- REDUCING: only an order that shrinks an existing position passes. It must not
  flip the position through zero, counting the resting orders on the same side,
  because those may fill first; an order on a flat position never reduces.
- HALTED: nothing new passes (cancels are execution's business and stay allowed).

The global state applies to every account. HALTED globally is the kill switch;
the stricter of the global and the account state wins.
"""

from __future__ import annotations

from decimal import Decimal
from enum import IntEnum

from cift.runtime.errors import InvalidArgument
from cift.trading.vocabulary import Side


class TradingState(IntEnum):
    """Ordered by strictness so `max` picks the state that restricts more."""

    ACTIVE = 0
    REDUCING = 1
    HALTED = 2

    @classmethod
    def parse(cls, name: str) -> TradingState:
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise InvalidArgument(
                f"Trading state must be one of active, reducing, halted (got {name!r})."
            ) from None


def effective_state(account: TradingState, venue: TradingState) -> TradingState:
    return max(account, venue)


def reduces_position(
    side: Side, qty: Decimal | None, position_qty: Decimal, open_same_side_qty: Decimal
) -> bool:
    """True when filling this order and every resting order on its side only shrinks the position.

    `qty` None means the quantity is unknown (a notional order without a price),
    which cannot be shown to reduce anything.
    """
    if qty is None or qty <= 0:
        return False
    # The position this side can still work down toward zero.
    reducible = -position_qty if side is Side.BUY else position_qty
    return reducible > 0 and open_same_side_qty + qty <= reducible
