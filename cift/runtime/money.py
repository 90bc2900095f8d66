"""Exact decimals for money, prices and quantities.

Wire decimals are strings; this is the one place they become `Decimal`. Floats
never enter: a float cannot represent 0.1 and the ledger must balance to the cent.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from cift.runtime.errors import InvalidArgument

# Bound on digits so a hostile "1e999999" cannot make arithmetic explode.
MAX_DIGITS = 30
MAX_EXPONENT = 18


def parse_decimal(field: str, text: str, *, allow_empty: bool = False) -> Decimal | None:
    """Read a wire decimal, refusing NaN, infinities, exponent tricks and garbage."""
    stripped = text.strip()
    if not stripped:
        if allow_empty:
            return None
        raise InvalidArgument(f'{field} is required and must be a decimal string such as "10.5".')
    try:
        value = Decimal(stripped)
    except InvalidOperation:
        raise InvalidArgument(
            f'{field} must be a decimal string such as "10.5", not {text!r}.'
        ) from None
    if not value.is_finite():
        raise InvalidArgument(f"{field} must be a finite number, not {text!r}.")
    _sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    if (
        len(digits) > MAX_DIGITS
        or abs(exponent) > MAX_EXPONENT
        or len(digits) + exponent > MAX_EXPONENT
    ):
        raise InvalidArgument(f"{field} is out of range: {text!r}.")
    return value


def require_decimal(field: str, text: str) -> Decimal:
    """Like `parse_decimal` for a field that must be present."""
    value = parse_decimal(field, text)
    assert value is not None
    return value


def format_decimal(value: Decimal) -> str:
    """Render without exponent notation so clients never see "1E+2"."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def round_to_increment(value: Decimal, increment: Decimal) -> Decimal:
    """Round half-even to a multiple of `increment` (a tick or lot size)."""
    if increment <= 0:
        raise ValueError("increment must be positive")
    return (value / increment).quantize(Decimal(1)) * increment


def is_multiple_of(value: Decimal, increment: Decimal) -> bool:
    """True when `value` lies on the grid of `increment` (tick grid, lot size)."""
    return increment > 0 and value % increment == 0
