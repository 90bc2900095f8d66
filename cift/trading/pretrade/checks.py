"""One pre-trade check: every rule applied to an order against its snapshot.

All rules run, so a rejected order lists everything wrong with it at once. The
result also carries the estimates the decision was made on (price, notional,
cost), which the caller may log or show.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from cift.trading.pretrade.order import OrderToCheck
from cift.trading.pretrade.rules import ALL_RULES, CheckContext, Reason, Rule, Violation
from cift.trading.pretrade.snapshot import CheckSnapshot


@dataclass(frozen=True, slots=True)
class CheckResult:
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
    order: OrderToCheck, snap: CheckSnapshot, rules: tuple[Rule, ...] = ALL_RULES
) -> CheckResult:
    ctx = CheckContext.of(order, snap)
    found: list[Violation] = []
    for rule in rules:
        broken = rule(ctx)
        if broken:  # most rules pass most orders: skip extending by nothing
            found.extend(broken)
    return CheckResult(tuple(found), ctx.price, ctx.notional, ctx.order_cost)
