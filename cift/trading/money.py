"""The rounding rules of cash, prices, quantities and ratios, each written once.

Money, prices and quantities are exact `Decimal`s everywhere; they are rounded only
where a figure is booked or reported, and always by one of these rules, so a sum
of rounded figures agrees wherever it is recomputed (the ledger, the backtest, the
day's P&L, the risk service's messages):

- Cash that moves or is reported — fill amounts, commissions, reservations, market
  values, P&L — rounds half up (ties away from zero) to the cent: `to_cents`.
- A cash amount a float engine reports (the backtest's vector engines) is read as
  the shortest decimal that is the same float, then rounded half-even to the cent:
  `cents_of_float` (the float already carries representation error either way, and
  half-even adds no bias across the many amounts of one report).
- Averages of prices (a position's entry price, an order's fill price) round half up
  to `AVG_PRICE_STEP`: `average_price`.
- Ratios (unrealized P&L percent, change today, the day's equity change) round
  half-even to `RATIO_STEP`: `to_ratio`.
- A quantity derived from a fraction of another (close 40% of a position) rounds
  down to the instrument's quantity increment, so it never exceeds what was asked:
  `floor_to_increment`.
- Prices and quantities a client sends are never rounded, only checked against
  their grid (`cift.runtime.money.is_multiple_of` with the instrument's tick size
  and quantity increment), so an order executes exactly as entered or is refused.
- A figure quoted in a message is shown half-even at a fixed number of places:
  `to_places`, and dollars with `dollars`.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
AVG_PRICE_STEP = Decimal("0.000001")
RATIO_STEP = Decimal("0.000001")


def to_cents(amount: Decimal) -> Decimal:
    """Cash rounds half up to the cent: the one rounding rule for money that moves."""
    return amount.quantize(CENT, ROUND_HALF_UP)


def cents_of_float(amount: float) -> Decimal:
    """A float engine's cash amount, as the shortest decimal of that float, half-even to the cent."""
    return Decimal(repr(float(amount))).quantize(CENT, ROUND_HALF_EVEN)


def average_price(total: Decimal, qty: Decimal) -> Decimal:
    """`total / qty` (a cost or notional over a quantity, signs alike) half up to `AVG_PRICE_STEP`."""
    return (total / qty).quantize(AVG_PRICE_STEP, ROUND_HALF_UP)


def to_ratio(value: Decimal) -> Decimal:
    """A ratio (0.05 is five percent) half-even to `RATIO_STEP`."""
    return value.quantize(RATIO_STEP, ROUND_HALF_EVEN)


def floor_to_increment(qty: Decimal, increment: Decimal) -> Decimal:
    """The largest multiple of `increment` not above `qty` (a positive quantity)."""
    if increment <= 0:
        raise ValueError("increment must be positive")
    return (qty / increment).to_integral_value(ROUND_FLOOR) * increment


def to_places(value: Decimal, places: int) -> Decimal:
    """A figure to show in a message, half-even at `places` decimals."""
    return value.quantize(Decimal(1).scaleb(-places), ROUND_HALF_EVEN)


def dollars(amount: Decimal) -> str:
    """Cash as a person reads it: "$1,234.57" (to the cent, half up, thousands separated)."""
    return f"${to_cents(amount):,.2f}"
