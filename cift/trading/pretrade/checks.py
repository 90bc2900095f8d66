"""One pre-trade check: every rule applied to an order against its snapshot.

All rules run, so a rejected order lists everything wrong with it at once. The
result also carries the estimates the decision was made on (price, notional,
cost), which the caller may log or show.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from cift.trading.pretrade.order import CheckedOrder
from cift.trading.pretrade.rules import (
    ALL_RULES,
    CheckContext,
    Reason,
    Rule,
    Violation,
    check_instrument,
    check_notional_allowed,
    check_price_collar,
    check_prices,
    check_rate,
    check_shortable,
    check_tick_grid,
    check_trading_state,
)
from cift.trading.pretrade.snapshot import SnapshotView
from cift.trading.pretrade.trading_state import TradingState
from cift.trading.vocabulary import OrderType

_MARKET = OrderType.MARKET  # read once: an enum class attribute costs far more than a global

# The rules that read nothing of a plain market order for a quantity (no prices,
# no trail, no notional) but what makes them pass: its price terms are absent.
_SILENT_FOR_PLAIN_MARKET = frozenset(
    (check_prices, check_tick_grid, check_notional_allowed, check_price_collar)
)


@dataclass(slots=True)
class CheckResult:
    """The verdict and its estimates; built once per check and only read after.

    Not frozen: a frozen dataclass pays an `object.__setattr__` call per field on
    construction, once per order on the risk service and in every backtest.
    """

    violations: tuple[Violation, ...]
    expected_price: Decimal | None
    expected_notional: Decimal | None
    order_cost: Decimal | None

    @property
    def approved(self) -> bool:
        return not self.violations

    @property
    def reasons(self) -> tuple[Reason, ...]:
        return tuple(v.reason for v in self.violations)

    @property
    def rate_limited(self) -> bool:
        return Reason.RATE_LIMITED in self.reasons


def check_order(
    order: CheckedOrder, snap: SnapshotView, rules: tuple[Rule, ...] = ALL_RULES
) -> CheckResult:
    ctx = CheckContext.of(order, snap)
    found: list[Violation] = []
    for rule in rules:
        broken = rule(ctx)
        if broken:  # most rules pass most orders: skip extending by nothing
            found.extend(broken)
    return CheckResult(tuple(found), ctx.price, ctx.notional, ctx.order_cost)


def rules_that_can_refuse(
    snap: SnapshotView, rules: tuple[Rule, ...] = ALL_RULES
) -> tuple[Rule, ...]:
    """`rules` without those that pass every order while the snapshot's standing parts hold.

    A caller that checks many orders under the same trading states, rate answer,
    instrument and limits (a backtest's account) judges each with this shorter
    list and gets the same verdicts: a rule is left out only when, given those
    parts alone, it returns nothing for any order. Whoever changes one of those
    parts takes the list again.
    """
    silent: set[Rule] = set()
    if snap.venue_state is TradingState.ACTIVE and snap.account_state is TradingState.ACTIVE:
        silent.add(check_trading_state)
    if snap.rate is None or snap.rate.allowed:
        silent.add(check_rate)
    instrument = snap.instrument
    if instrument is not None and instrument.tradable and not instrument.halted:
        silent.add(check_instrument)
    if (instrument is None or instrument.shortable) and snap.limits.allow_short:
        silent.add(check_shortable)
    return tuple(rule for rule in rules if rule not in silent)


def is_plain_market(order: CheckedOrder) -> bool:
    """A market order for a quantity, with no limit, stop, trail or notional."""
    return (
        order.order_type is _MARKET
        and order.notional is None
        and order.qty is not None
        and order.limit_price is None
        and order.stop_price is None
        and order.trail_price is None
        and order.trail_percent is None
    )


def rules_for_plain_market(rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
    """`rules` without those that pass every plain market order (`is_plain_market`).

    `check_prices` passes a market order without prices or trail,
    `check_tick_grid` and `check_price_collar` have no price to judge, and
    `check_notional_allowed` judges notional orders only: for such an order these
    return nothing, whatever the snapshot, so a caller that sends many (a
    backtest's signal turns) gets the same verdicts from the shorter list.
    """
    return tuple(rule for rule in rules if rule not in _SILENT_FOR_PLAIN_MARKET)
