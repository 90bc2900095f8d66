"""Risk limits: the service-wide defaults and an account's overrides merged over them.

Defaults come from configuration (`RiskConfig`); an administrator may override any
field for one account. An override that is absent inherits the default, so raising
a default later raises it for every account that did not pin its own value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal

from cift.runtime.errors import InvalidArgument
from cift.runtime.money import is_multiple_of
from cift.trading.pretrade.token_bucket import MAX_BURST


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The effective limits one check is judged against."""

    max_order_qty: Decimal = Decimal(10_000)
    max_order_notional: Decimal = Decimal(250_000)
    max_position_qty: Decimal = Decimal(50_000)
    max_position_notional: Decimal = Decimal(500_000)
    max_gross_exposure: Decimal = Decimal(1_000_000)
    max_open_orders: int = 500
    # Percent (10 = 10%) a limit or stop price may sit from the reference price.
    price_collar_pct: Decimal = Decimal(10)
    # A quote older than this is not a price anyone should trade a market order on.
    max_quote_age_s: Decimal = Decimal(10)
    orders_per_second: Decimal = Decimal(50)
    order_burst: int = 100
    allow_notional_orders: bool = True
    # Whether sells may open or grow a short (the instrument must be shortable too).
    allow_short: bool = True


@dataclass(frozen=True, slots=True)
class LimitOverrides:
    """One account's pinned values; None means "inherit the default"."""

    max_order_qty: Decimal | None = None
    max_order_notional: Decimal | None = None
    max_position_qty: Decimal | None = None
    max_position_notional: Decimal | None = None
    max_gross_exposure: Decimal | None = None
    max_open_orders: int | None = None
    price_collar_pct: Decimal | None = None
    max_quote_age_s: Decimal | None = None
    orders_per_second: Decimal | None = None
    order_burst: int | None = None
    allow_notional_orders: bool | None = None
    allow_short: bool | None = None

    def pinned(self) -> dict[str, Decimal | int | bool]:
        """The fields this account overrides, by name."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None
        }

    def updated(
        self, changes: LimitOverrides, cleared: frozenset[str] = frozenset()
    ) -> LimitOverrides:
        """Apply an admin's update: `changes` pin new values, `cleared` return fields to the default."""
        unknown = cleared - LIMIT_FIELDS
        if unknown:
            raise InvalidArgument(f"Unknown limit field(s): {', '.join(sorted(unknown))}.")
        merged: dict[str, object] = {**self.pinned(), **changes.pinned()}
        for name in cleared:
            merged.pop(name, None)
        return LimitOverrides(**merged)  # type: ignore[arg-type]


LIMIT_FIELDS = frozenset(f.name for f in dataclasses.fields(RiskLimits))

# Largest values accepted, so a typo cannot disable a control by accident of scale.
_MAX_COLLAR_PCT = Decimal(100)
_MAX_RATE = Decimal(100_000)
# orders_per_second is given to at most three decimal places.
RATE_STEP = Decimal("0.001")


def validate(limits: RiskLimits | LimitOverrides) -> None:
    """Refuse values no control can work with (zero or negative sizes, absurd collars)."""
    problems: list[str] = []
    for name in (
        "max_order_qty",
        "max_order_notional",
        "max_position_qty",
        "max_position_notional",
        "max_gross_exposure",
        "max_quote_age_s",
    ):
        value = getattr(limits, name)
        if value is not None and not value > 0:
            problems.append(f"{name} must be greater than zero (got {value})")
    for name in ("max_open_orders", "order_burst"):
        value = getattr(limits, name)
        if value is not None and value < 1:
            problems.append(f"{name} must be at least 1 (got {value})")
    if limits.order_burst is not None and limits.order_burst > MAX_BURST:
        problems.append(f"order_burst must be at most {MAX_BURST:,} (got {limits.order_burst})")
    collar = limits.price_collar_pct
    if collar is not None and not Decimal(0) < collar <= _MAX_COLLAR_PCT:
        problems.append(f"price_collar_pct must be above 0 and at most 100 (got {collar})")
    rate = limits.orders_per_second
    if rate is not None:
        if not Decimal(0) < rate <= _MAX_RATE:
            problems.append(
                f"orders_per_second must be above 0 and at most {_MAX_RATE} (got {rate})"
            )
        elif not is_multiple_of(rate, RATE_STEP):
            problems.append(f"orders_per_second allows at most 3 decimal places (got {rate})")
    if problems:
        raise InvalidArgument("Invalid risk limits: " + "; ".join(problems) + ".")


def effective_limits(defaults: RiskLimits, overrides: LimitOverrides) -> RiskLimits:
    """The defaults with the account's pinned values laid over them."""
    return dataclasses.replace(defaults, **overrides.pinned())  # type: ignore[arg-type]
