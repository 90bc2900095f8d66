"""Risk's own Prometheus metrics: check verdicts, rejection reasons and the kill switch.

Operators alert on these (deploy/k8s/base/monitoring): a burst of rejections of one
reason, or the kill switch left on, is what they are paged for.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from cift.trading.pretrade.checks import CheckResult
from cift.trading.pretrade.trading_state import TradingState
from services.risk.desk import RiskDesk

CHECKS = Counter(
    "cift_risk_checks_total",
    "Pre-trade checks decided, by verdict (approved or rejected).",
    ["verdict"],
)
REJECTIONS = Counter(
    "cift_risk_rejections_total",
    "Reasons of rejected checks (a check rejected for two reasons counts under both).",
    ["reason"],
)
KILL_SWITCH = Gauge(
    "cift_risk_kill_switch_engaged",
    "1 while the global trading state (the kill switch) is reducing or halted, else 0.",
)
_APPROVED, _REJECTED = CHECKS.labels("approved"), CHECKS.labels("rejected")


def record_check(result: CheckResult) -> None:
    if result.approved:
        _APPROVED.inc()
        return
    _REJECTED.inc()
    for reason in result.reasons:
        REJECTIONS.labels(reason.name.lower()).inc()


def watch_kill_switch(desk: RiskDesk) -> None:
    """Export the desk's global state, read at each scrape."""
    KILL_SWITCH.set_function(lambda: float(desk.venue_state is not TradingState.ACTIVE))
