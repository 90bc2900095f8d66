"""Market data's `Instrument` message as the trading vocabulary's `Instrument`.

Execution and risk both judge orders against the instrument GetInstrument
describes; each used to decode it for itself, and the two disagreed (execution
kept an inactive symbol tradable and never saw a halt; risk ignored the minimum
order size). Both decode it here, so an order is held to the same tick, step,
halt and short rules by each. Decimals are read as every wire decimal is
(`cift.runtime.money`); a size left empty or not above zero reads as a penny tick
and a one-share lot, and one that does not parse is market data's error
(`MalformedInstrument`), not the order's.
"""

from __future__ import annotations

from decimal import Decimal

from cift.marketdata.v1 import marketdata_pb2
from cift.runtime.errors import InvalidArgument
from cift.runtime.money import is_multiple_of, optional_decimal
from cift.trading.vocabulary import FRACTIONAL_QTY_INCREMENT, ONE, ZERO, Instrument

# A US equity's tick at or above $1, for a message that names none.
DEFAULT_TICK_SIZE = Decimal("0.01")


class MalformedInstrument(ValueError):
    """Market data described an instrument with a figure that is not a decimal.

    Its fault, not the order's: the caller gets INTERNAL (with a trace id, and this
    message in the service's log), never an INVALID_ARGUMENT blaming their request.
    """


def instrument_from_wire(wire: marketdata_pb2.Instrument) -> Instrument:
    """The trading rules `wire` describes; MalformedInstrument naming a malformed decimal."""
    lot = _positive(wire, "lot_size") or ONE
    return Instrument(
        symbol=wire.symbol,
        tick_size=_positive(wire, "tick_size") or DEFAULT_TICK_SIZE,
        qty_increment=_fractional_step(wire, lot) if wire.fractionable else lot,
        fractionable=wire.fractionable,
        # `tradable` should already be false for a delisted symbol; the status decides
        # when a message says otherwise. A halt is its own refusal (INSTRUMENT_HALTED).
        tradable=wire.tradable and wire.status != marketdata_pb2.INSTRUMENT_STATUS_INACTIVE,
        lot_size=lot,
        halted=wire.status == marketdata_pb2.INSTRUMENT_STATUS_HALTED,
        shortable=wire.shortable,
    )


def _fractional_step(wire: marketdata_pb2.Instrument, lot: Decimal) -> Decimal:
    # A minimum order size finer than a lot, that whole lots are multiples of, is
    # the step fractional orders go in. Otherwise (market data sends the lot as the
    # minimum) the step is the vocabulary's fractional default: a lot-sized step
    # would refuse the fractional quantities `fractionable` promises.
    minimum = _positive(wire, "min_order_size")
    if minimum is not None and minimum < lot and is_multiple_of(lot, minimum):
        return minimum
    return FRACTIONAL_QTY_INCREMENT


def _positive(wire: marketdata_pb2.Instrument, field: str) -> Decimal | None:
    """The decimal in `field`, or None when empty or not above zero (no usable grid)."""
    text: str = getattr(wire, field)
    try:
        value = optional_decimal(field, text)
    except InvalidArgument:
        raise MalformedInstrument(
            f"Market data's instrument {wire.symbol} has {field} {text!r}, not a decimal; "
            "check its instrument list."
        ) from None
    return value if value is not None and value > ZERO else None
