"""Import rules that keep the layers honest.

The shared trading core (`cift/trading`) runs inside the execution service and the
backtest engine alike, so it must stay pure: no database, RPC, broker or wire-format
imports. Services share code through `cift/`, never by importing one another.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IO_MODULES = ("asyncpg", "grpc", "confluent_kafka", "redis", "google.protobuf", "prometheus_client")
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "__init__.py").exists())


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def is_under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize(
    "path", sorted((ROOT / "cift" / "trading").rglob("*.py")), ids=lambda p: p.name
)
def test_trading_core_does_no_io(path: Path) -> None:
    forbidden = {
        module
        for module in imported_modules(path)
        if any(is_under(module, io) for io in IO_MODULES)
        or is_under(module, "services")
        or (is_under(module, "cift") and module.endswith("_pb2"))
    }
    assert not forbidden, f"{path.relative_to(ROOT)} imports I/O or a service: {sorted(forbidden)}"


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_never_imports_another(service: str) -> None:
    others = [s for s in SERVICES if s not in (service, "common")]
    offending = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in (ROOT / "services" / service).rglob("*.py")
        for module in imported_modules(path)
        if any(is_under(module, f"services.{other}") for other in others)
    }
    assert not offending, f"services.{service} imports another service: {sorted(offending)}"


def test_the_rules_see_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncpg\nfrom services.risk import rules\n")
    assert imported_modules(bad) == {"asyncpg", "services.risk"}


@pytest.mark.parametrize(
    "path", sorted((ROOT / "cift" / "runtime").rglob("*.py")), ids=lambda p: p.name
)
def test_the_shared_runtime_never_imports_a_service(path: Path) -> None:
    offending = {m for m in imported_modules(path) if is_under(m, "services")}
    assert not offending, f"{path.relative_to(ROOT)} imports a service: {sorted(offending)}"


def test_the_trading_core_reaches_no_io_through_the_runtime() -> None:
    """`cift.trading` may use the runtime's pure helpers (errors, money), not its I/O."""
    pure = {"cift.runtime.errors", "cift.runtime.money"}
    offending = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in (ROOT / "cift" / "trading").rglob("*.py")
        for module in imported_modules(path)
        if is_under(module, "cift.runtime") and module not in pure
    }
    assert not offending, sorted(offending)


# Execution's use cases reach SQL and Kafka only through the adapters: the store
# module, the outbox and the Kafka client stay out of the modules that hold no
# transaction of their own (subscriptions, live book, ports).
PURE_APP_MODULES = ("live.py", "ports.py", "subscriptions.py")


@pytest.mark.parametrize("name", PURE_APP_MODULES)
def test_executions_plain_use_case_modules_do_no_io(name: str) -> None:
    path = ROOT / "services" / "execution" / "app" / name
    forbidden = {
        module
        for module in imported_modules(path)
        if any(is_under(module, io) for io in ("asyncpg", "confluent_kafka", "redis"))
        or is_under(module, "services.execution.adapters")
        or is_under(module, "cift.runtime.kafka")
        or is_under(module, "cift.runtime.outbox")
    }
    assert not forbidden, f"app/{name} imports I/O: {sorted(forbidden)}"


def test_the_app_layer_never_imports_the_server() -> None:
    """Use cases are called by the server, never the other way round."""
    offending = {
        f"{path.name}: {module}"
        for path in (ROOT / "services" / "execution" / "app").rglob("*.py")
        for module in imported_modules(path)
        if module in ("services.execution.server", "services.execution.__main__")
    }
    assert not offending, sorted(offending)


def test_executions_use_cases_never_touch_the_wire() -> None:
    """Protobuf (generated `cift.<service>.v1` packages) and gRPC stay in the adapters and the edge."""
    offending = {
        f"{path.name}: {module}"
        for path in (ROOT / "services" / "execution" / "app").rglob("*.py")
        for module in imported_modules(path)
        if re.fullmatch(r"cift\.\w+\.v\d+(\..*)?", module)
        or any(is_under(module, wire) for wire in ("google.protobuf", "grpc"))
    }
    assert not offending, sorted(offending)


@pytest.mark.parametrize("name", ("server.py", "server_accounts.py"))
def test_executions_grpc_edge_reaches_the_database_only_through_use_cases(name: str) -> None:
    path = ROOT / "services" / "execution" / name
    offending = {
        module
        for module in imported_modules(path)
        if is_under(module, "asyncpg")
        or re.fullmatch(r"services\.execution\.adapters\.\w+_sql", module)
    }
    from_adapters = {
        alias.name
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.module == "services.execution.adapters"
        for alias in node.names
        if alias.name.endswith("_sql")
    }
    assert not offending | from_adapters, (
        f"{name} reads SQL itself: {sorted(offending | from_adapters)}"
    )
