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


# Execution's use cases reach SQL, Kafka and the wire only through ports
# (`app/ports.py`, `app/store_ports.py`), which the adapters implement and
# `__main__.py` wires in: no app module imports an adapter, a database, RPC or broker
# client, generated protobuf, or a runtime module that does (`cift.runtime.db`,
# `kafka`, `outbox`, `clients`, ...).
APP_MODULES = sorted((ROOT / "services" / "execution" / "app").rglob("*.py"))
WIRE_OR_IO = (*IO_MODULES, "grpc_health", "grpc_reflection", "psycopg")


def is_generated_stub(module: str) -> bool:
    return re.fullmatch(r"cift\.\w+\.v\d+(\..*)?", module) is not None


# A runtime module that opens a database, RPC, broker or cache connection itself.
# (Shared vocabulary such as `timestamps` and `coalesce` may still be used: it
# converts or measures, it talks to nothing.)
CLIENT_MODULES = ("asyncpg", "grpc", "confluent_kafka", "redis")


def runtime_modules_doing_io() -> set[str]:
    """The `cift.runtime` modules that talk to a database, RPC peer, broker or cache, or
    import generated stubs."""
    return {
        f"cift.runtime.{path.stem}"
        for path in (ROOT / "cift" / "runtime").glob("*.py")
        if any(
            any(is_under(module, io) for io in CLIENT_MODULES) or is_generated_stub(module)
            for module in imported_modules(path)
        )
    }


def io_imports_of_use_case(path: Path, io_runtime: set[str]) -> set[str]:
    return {
        module
        for module in imported_modules(path)
        if any(is_under(module, io) for io in WIRE_OR_IO)
        or is_under(module, "services.execution.adapters")
        or is_generated_stub(module)
        or any(is_under(module, runtime) for runtime in io_runtime)
    }


@pytest.mark.parametrize("path", APP_MODULES, ids=lambda p: p.name)
def test_executions_use_cases_reach_the_outside_only_through_ports(path: Path) -> None:
    forbidden = io_imports_of_use_case(path, runtime_modules_doing_io())
    assert not forbidden, (
        f"app/{path.name} imports an adapter or I/O: {sorted(forbidden)}; "
        "declare what it needs in app/ports.py or app/store_ports.py and wire the adapter "
        "in services/execution/__main__.py"
    )


def test_the_use_case_rule_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import asyncpg\n"
        "from services.execution.adapters import orders_sql\n"
        "from services.execution.adapters.wire import decode_ticks\n"
        "from cift.execution.v1 import events_pb2\n"
        "from cift.runtime.kafka import Event\n"
        "from cift.runtime.db import connect\n"
        "from google.protobuf import message\n"
        "from cift.runtime.timestamps import now_ns\n"
    )
    io_runtime = runtime_modules_doing_io()
    assert {"cift.runtime.kafka", "cift.runtime.db", "cift.runtime.outbox"} <= io_runtime
    assert "cift.runtime.timestamps" not in io_runtime
    assert io_imports_of_use_case(bad, io_runtime) == {
        "asyncpg",
        "services.execution.adapters",
        "services.execution.adapters.wire",
        "cift.execution.v1",
        "cift.runtime.kafka",
        "cift.runtime.db",
        "google.protobuf",
    }


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
