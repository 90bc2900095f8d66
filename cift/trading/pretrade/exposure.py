"""Per-account positions as risk knows them from execution's fills, and the gross exposure.

Fills carry the account's position after the fill, so applying one sets the
position rather than adding to it: a fill seen twice leaves the same state.
Gross exposure marks each position at the latest quote (else the last fill
price). After each fill the position is also checked against the limits, because
limits lowered after orders were accepted, or fills of orders that raced, can
leave an account over a limit: that is a breach to report, not to undo.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from cift.trading.pretrade.limits import RiskLimits
from cift.trading.pretrade.rules import Reason, Violation

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class HeldPosition:
    qty: Decimal
    last_fill_price: Decimal


MarkOf = Callable[[str], Decimal | None]


class ExposureBook:
    def __init__(self) -> None:
        self._accounts: dict[str, dict[str, HeldPosition]] = {}

    def set_position(self, account_id: str, symbol: str, qty: Decimal, fill_price: Decimal) -> None:
        positions = self._accounts.setdefault(account_id, {})
        if qty == 0:
            positions.pop(symbol, None)
        else:
            positions[symbol] = HeldPosition(qty, fill_price)

    def position_qty(self, account_id: str, symbol: str) -> Decimal:
        held = self._accounts.get(account_id, {}).get(symbol)
        return held.qty if held is not None else ZERO

    def gross_exposure(self, account_id: str, mark_of: MarkOf) -> Decimal:
        total = ZERO
        for symbol, held in self._accounts.get(account_id, {}).items():
            mark = mark_of(symbol)
            total += abs(held.qty) * (mark if mark is not None else held.last_fill_price)
        return total


def position_breaches(
    symbol: str, qty: Decimal, price: Decimal, gross_exposure: Decimal, limits: RiskLimits
) -> list[Violation]:
    """Limits a held position (after a fill) is over."""
    found: list[Violation] = []
    size = abs(qty)
    if size > limits.max_position_qty:
        found.append(
            Violation(
                Reason.MAX_POSITION_QTY,
                f"The {symbol} position of {size} shares is over the {limits.max_position_qty}-share limit.",
            )
        )
    if size * price > limits.max_position_notional:
        found.append(
            Violation(
                Reason.MAX_POSITION_NOTIONAL,
                f"The {symbol} position is worth {size * price:,.2f}, over the "
                f"{limits.max_position_notional:,.2f} limit.",
            )
        )
    if gross_exposure > limits.max_gross_exposure:
        found.append(
            Violation(
                Reason.MAX_GROSS_EXPOSURE,
                f"The account's gross exposure of {gross_exposure:,.2f} is over the "
                f"{limits.max_gross_exposure:,.2f} limit.",
            )
        )
    return found
