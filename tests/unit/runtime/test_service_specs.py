"""The specs services hand the runtime: who may call which method, where migrations live."""

from __future__ import annotations

from pathlib import Path

from cift.runtime.identity import SCOPE_ADMIN, SCOPE_READ, SCOPE_TRADE
from cift.runtime.interceptors import RpcPolicy
from cift.runtime.server import scoped_methods
from services.execution.__main__ import SPEC as EXECUTION
from services.risk.__main__ import SPEC as RISK

ROOT = Path(__file__).parents[3]


def test_each_method_gets_the_scope_it_is_listed_under() -> None:
    policies = scoped_methods("pkg.Svc", {SCOPE_TRADE: ("Place",), SCOPE_READ: ("Get", "List")})
    assert policies == {
        "/pkg.Svc/Place": RpcPolicy(scope=SCOPE_TRADE),
        "/pkg.Svc/Get": RpcPolicy(scope=SCOPE_READ),
        "/pkg.Svc/List": RpcPolicy(scope=SCOPE_READ),
    }


def test_execution_and_risk_migrate_their_own_folder_and_relay_their_outbox() -> None:
    for spec, name in ((EXECUTION, "execution"), (RISK, "risk")):
        assert spec.migrations_dir == ROOT / "services" / name / "migrations"
        assert (spec.uses_redis, spec.uses_kafka, spec.relay_outbox) == (True, True, True)


def test_risk_admin_calls_need_the_admin_scope_and_checks_the_trade_scope() -> None:
    by_method = {path.rsplit("/", 1)[1]: p.scope for path, p in RISK.policies.items()}
    assert by_method == {
        "CheckOrder": SCOPE_TRADE,
        "CheckOrders": SCOPE_TRADE,
        "GetRiskLimits": SCOPE_READ,
        "StreamRiskEvents": SCOPE_READ,
        "UpdateRiskLimits": SCOPE_ADMIN,
        "SetTradingState": SCOPE_ADMIN,
    }
    assert len(EXECUTION.policies) == 13
