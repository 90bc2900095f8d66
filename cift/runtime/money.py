"""Exact decimals for money, prices and quantities.

Wire decimals are strings; this is the one place they become `Decimal`. Floats
never enter the ledger: a float cannot represent 0.1 and it must balance to the cent.
Market data alone travels as doubles; `decimal_of_double` is how each one is read.
"""

from __future__ import annotations

import re
from decimal import Decimal

from cift.runtime.errors import InvalidArgument

_ZERO = Decimal(0)

# Bound on digits so a hostile "1e999999" cannot make arithmetic explode.
MAX_DIGITS = 30
MAX_EXPONENT = 18

# The one accepted form: ASCII digits, an optional leading minus and at most one point.
# `Decimal()` alone would also take "1_0", " 1 ", "+1", "1e2" and non-ASCII digits
# (Arabic-Indic "\u0661"), each of which a client may mean otherwise than the server reads.
_PLAIN_DECIMAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def parse_decimal(field: str, text: str, *, allow_empty: bool = False) -> Decimal | None:
    """Read a wire decimal: plain ASCII digits, optional "-" and ".", nothing else."""
    if not text:
        if allow_empty:
            return None
        raise InvalidArgument(f'{field} is required and must be a decimal string such as "10.5".')
    if _PLAIN_DECIMAL.fullmatch(text) is None:
        raise InvalidArgument(
            f'{field} must be a plain decimal string such as "10.5" or "-3" (ASCII digits, '
            f"an optional leading minus and point; no spaces, signs, exponents or "
            f"separators), not {text[:40]!r}."
        )
    value = Decimal(text)
    _sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    if (
        len(digits) > MAX_DIGITS
        or abs(exponent) > MAX_EXPONENT
        or len(digits) + exponent > MAX_EXPONENT
    ):
        raise InvalidArgument(f"{field} is out of range: {text[:40]!r}.")
    return value


def optional_decimal(field: str, text: str) -> Decimal | None:
    """Like `parse_decimal` for a field that may be left empty (None then)."""
    return parse_decimal(field, text, allow_empty=True)


def require_decimal(field: str, text: str) -> Decimal:
    """Like `parse_decimal` for a field that must be present."""
    value = parse_decimal(field, text)
    assert value is not None
    return value


def decimal_of_double(value: float) -> Decimal:
    """The decimal a feed meant by a double: its shortest round-trip text (100.1, not
    100.0999…), which every price a feed writes is. `float()` first, so a NumPy
    scalar reads as its value rather than as its repr ("np.float64(100.1)")."""
    return Decimal(repr(float(value)))


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
    # Against a Decimal zero, not 0: no int converted on every order's check.
    return increment > _ZERO and value % increment == _ZERO
