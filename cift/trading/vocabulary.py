"""The words every trading process shares: side, order type, time in force, instrument.

Execution, risk and the backtest engine each used to spell these out for
themselves; two spellings of `OrderType` can drift apart silently (a new type
accepted by one and refused by the other). They live here once, and every service
imports them. The cash rounding rule (`CENT`, `to_cents`) is `cift.trading.money`'s,
named here too because the order and fill modules speak of it with these words.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from cift.trading.money import CENT as CENT
from cift.trading.money import to_cents as to_cents

ZERO = Decimal(0)
ONE = Decimal(1)

# Smallest share fraction accepted for fractionable instruments when the market data
# service gives no finer minimum (nine decimal places, as US brokers offering
# fractional shares commonly accept).
FRACTIONAL_QTY_INCREMENT = Decimal("0.000000001")


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell: how the order moves a signed position."""
        return _SIGN[self]


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"
    TRAILING_STOP = "trailing_stop"

    @property
    def needs_limit_price(self) -> bool:
        return self in _NEEDS_LIMIT_PRICE

    @property
    def needs_stop_price(self) -> bool:
        return self in _NEEDS_STOP_PRICE


# Read per order on hot paths: a member looked up on its enum class costs far more
# than a dict or set probe, so the answers are tabled once here.
_SIGN = {Side.BUY: 1, Side.SELL: -1}
_NEEDS_LIMIT_PRICE = frozenset({OrderType.LIMIT, OrderType.STOP_LIMIT})
_NEEDS_STOP_PRICE = frozenset({OrderType.STOP, OrderType.STOP_LIMIT})


class TimeInForce(StrEnum):
    DAY = "day"
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"
    GTD = "gtd"  # good till `expire_ns`
    OPG = "opg"  # the opening auction only (auction.py)
    CLS = "cls"  # the closing auction only


@dataclass(frozen=True, slots=True)
class Instrument:
    """The trading rules of one symbol, as the market data service publishes them.

    `qty_increment` is the smallest quantity step. Left at zero (its default) it is
    derived: `FRACTIONAL_QTY_INCREMENT` for a fractionable instrument, else the lot
    size. Execution and risk both read it from market data's message with
    `cift.runtime.instrument_wire`, which names the step.
    """

    symbol: str
    tick_size: Decimal
    qty_increment: Decimal = ZERO
    fractionable: bool = False
    tradable: bool = True
    lot_size: Decimal = ONE
    halted: bool = False
    shortable: bool = True

    def __post_init__(self) -> None:
        if self.qty_increment <= 0:
            derived = FRACTIONAL_QTY_INCREMENT if self.fractionable else self.lot_size
            object.__setattr__(self, "qty_increment", derived)
