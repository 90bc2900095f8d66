"""How the launcher decides what to start, where it listens, and what children read."""

from __future__ import annotations

import fcntl
import io
import socket
from pathlib import Path

import pytest

from cift.runtime.config import CommonConfig, load, load_service
from cift.stack import kafka_broker, postgres
from cift.stack.cli import format_table, listening_table, read_password
from cift.stack.errors import StackError, redact_url
from cift.stack.launcher import LOCK_FILE, STATE_FILE, Stack, StackInfo, StackOptions, read_running
from cift.stack.ports import PortPlan, ensure_free, port_in_use
from cift.stack.services import service_environ
from cift.stack.settings import StackConfig
from services.marketdata.config import MarketDataConfig


def stack_in(tmp_path: Path, environ: dict[str, str] | None = None) -> Stack:
    return Stack(StackOptions(home=tmp_path / "home"), environ or {})


def sample_info(home: Path) -> StackInfo:
    return StackInfo(
        home=home,
        database_url="postgresql://postgres@127.0.0.1:55432/cift",
        redis_url="redis://127.0.0.1:56379/0",
        kafka_bootstrap="127.0.0.1:59092",
        embedded=("postgres", "kafka"),
        grpc_addrs={"auth": "127.0.0.1:50051"},
        metrics_urls={"auth": "http://127.0.0.1:9101/metrics"},
        gateway_url="http://127.0.0.1:8080",
        gateway_admin_url="http://127.0.0.1:9901",
        env={"CIFT_DATABASE_URL": "postgresql://postgres@127.0.0.1:55432/cift"},
    )


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_default_ports_are_the_documented_ones(tmp_path: Path) -> None:
    ports = stack_in(tmp_path).ports
    assert (ports.postgres, ports.redis, ports.kafka) == (55432, 56379, 59092)
    assert (ports.gateway, ports.gateway_admin) == (8080, 9901)
    assert dict(ports.grpc) == {
        "auth": 50051,
        "marketdata": 50052,
        "execution": 50053,
        "risk": 50054,
        "backtest": 50055,
    }
    assert dict(ports.metrics) == {
        "auth": 9101,
        "marketdata": 9102,
        "execution": 9103,
        "risk": 9104,
        "backtest": 9105,
    }


def test_a_services_grpc_port_follows_its_configured_address(tmp_path: Path) -> None:
    stack = stack_in(
        tmp_path, {"CIFT_RISK_ADDR": "127.0.0.1:6054", "CIFT_RISK_METRICS_PORT": "6104"}
    )
    assert stack.ports.grpc["risk"] == 6054
    assert stack.ports.metrics["risk"] == 6104
    assert stack.grpc_addrs["risk"] == "127.0.0.1:6054"


def test_service_address_without_a_port_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="service address 'risk-host' has no port"):
        stack_in(tmp_path, {"CIFT_RISK_ADDR": "risk-host"})


@pytest.mark.parametrize("delay", ["0", "-1", "31"])
def test_a_first_restart_delay_outside_the_backoff_is_refused(tmp_path: Path, delay: str) -> None:
    with pytest.raises(StackError, match="CIFT_RESTART_FIRST_DELAY_S must be above 0"):
        stack_in(tmp_path, {"CIFT_RESTART_FIRST_DELAY_S": delay})


def test_free_port_plan_has_distinct_ports_and_round_trips_through_the_environment() -> None:
    plan = PortPlan.free()
    ports = [plan.postgres, plan.redis, plan.kafka, plan.gateway, plan.gateway_admin]
    ports += [*plan.grpc.values(), *plan.metrics.values()]
    assert len(set(ports)) == len(ports) == 15
    assert PortPlan.from_config(load(StackConfig, plan.to_environ())) == plan


def test_nothing_configured_means_everything_embedded(tmp_path: Path) -> None:
    stack = stack_in(tmp_path, {"CIFT_EMBEDDED_POSTGRES_PORT": "6432"})
    assert stack.embedded == ("postgres", "redis", "kafka")
    assert stack.database_url == "postgresql://postgres@127.0.0.1:6432/cift"
    assert stack.redis_url == "redis://127.0.0.1:56379/0"
    assert stack.kafka_bootstrap == "127.0.0.1:59092"


def test_a_configured_address_replaces_the_embedded_piece(tmp_path: Path) -> None:
    stack = stack_in(
        tmp_path,
        {
            "CIFT_DATABASE_URL": "postgresql://app:secret@db.internal:5432/trading",
            "CIFT_KAFKA_BOOTSTRAP": "kafka-0:9092,kafka-1:9092",
        },
    )
    assert stack.embedded == ("redis",)
    assert stack.database_url == "postgresql://app:secret@db.internal:5432/trading"
    assert stack.kafka_bootstrap == "kafka-0:9092,kafka-1:9092"


def test_an_empty_address_variable_counts_as_not_configured(tmp_path: Path) -> None:
    assert "redis" in stack_in(tmp_path, {"CIFT_REDIS_URL": " "}).embedded


def test_services_get_their_own_ports_and_everyones_addresses(tmp_path: Path) -> None:
    stack = stack_in(tmp_path, {"PATH": "/usr/bin", "CIFT_LOG_LEVEL": "DEBUG"})
    environ = stack.service_environs()["execution"]
    assert environ["PATH"] == "/usr/bin"
    config = load_service(CommonConfig, "execution", environ)
    assert config.service_name == "execution"
    assert (config.grpc_host, config.grpc_port, config.metrics_port) == ("127.0.0.1", 50053, 9103)
    assert config.database_url == stack.database_url
    assert config.risk_addr == "127.0.0.1:50054"
    assert config.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("environ", "session_ms"),
    [
        # The embedded broker: a short session, so a killed service is back in seconds.
        ({}, kafka_broker.SESSION_TIMEOUT_MS),
        ({"CIFT_KAFKA_SESSION_TIMEOUT_MS": "7000"}, 7000),
        # A real cluster refuses sessions under its minimum: the default stays.
        ({"CIFT_KAFKA_BOOTSTRAP": "kafka-0:9092"}, CommonConfig.kafka_session_timeout_ms),
    ],
)
def test_services_get_a_short_kafka_session_only_on_the_embedded_broker(
    tmp_path: Path, environ: dict[str, str], session_ms: int
) -> None:
    stack = stack_in(tmp_path, environ)
    config = load_service(CommonConfig, "risk", stack.service_environs()["risk"])
    assert config.kafka_session_timeout_ms == session_ms
    # And any other process pointed at the stack by its published settings.
    pointed = load(
        CommonConfig, {**environ, **stack.describe(with_services=True, with_gateway=True).env}
    )
    assert pointed.kafka_session_timeout_ms == session_ms


@pytest.mark.parametrize(
    ("environ", "history_s"),
    [({}, 3600.0), ({"CIFT_MARKETDATA_SIMULATOR_HISTORY_S": "0"}, 0.0),
     ({"CIFT_MARKETDATA_SIMULATOR_HISTORY_S": "600"}, 600.0)],
)  # fmt: skip
def test_cift_up_gives_market_data_an_hour_of_history_unless_told_otherwise(
    tmp_path: Path, environ: dict[str, str], history_s: float
) -> None:
    environ_of = stack_in(tmp_path, environ).service_environs()["marketdata"]
    config = load_service(MarketDataConfig, "marketdata", environ_of)
    assert config.marketdata_simulator_history_s == history_s
    assert load_service(MarketDataConfig, "marketdata", {}).marketdata_simulator_history_s == 0


def test_service_environ_overrides_inherited_cift_settings() -> None:
    common = load(CommonConfig, {})
    environ = service_environ({"CIFT_GRPC_PORT": "1"}, common, "auth", 7001, 7101)
    assert environ["CIFT_GRPC_PORT"] == "7001"
    assert environ["CIFT_METRICS_PORT"] == "7101"
    assert environ["CIFT_SERVICE_NAME"] == "auth"


def test_describe_names_every_address_and_the_env_that_points_at_them(tmp_path: Path) -> None:
    stack = stack_in(tmp_path)
    info = stack.describe(with_services=True, with_gateway=True)
    assert info.grpc_addrs["marketdata"] == "127.0.0.1:50052"
    assert info.metrics_urls["auth"] == "http://127.0.0.1:9101/metrics"
    assert info.gateway_url == "http://127.0.0.1:8080"
    assert info.gateway_admin_url == "http://127.0.0.1:9901"
    assert info.env["CIFT_DATABASE_URL"] == "postgresql://postgres@127.0.0.1:55432/cift"
    assert info.env["CIFT_AUTH_ADDR"] == "127.0.0.1:50051"
    assert info.env["CIFT_HOME"] == str(tmp_path / "home")


def test_infrastructure_only_description_has_no_services_or_gateway(tmp_path: Path) -> None:
    info = stack_in(tmp_path).describe(with_services=False, with_gateway=False)
    assert info.grpc_addrs == {}
    assert info.gateway_url is None
    assert "CIFT_AUTH_ADDR" not in info.env


def test_stack_info_round_trips_through_its_state_file_format(tmp_path: Path) -> None:
    info = sample_info(tmp_path)
    assert StackInfo.from_json(info.to_json()) == info


def test_state_file_counts_only_while_its_launcher_holds_the_lock(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_text(sample_info(tmp_path).to_json())
    assert read_running(tmp_path) is None
    with (tmp_path / LOCK_FILE).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert read_running(tmp_path) == sample_info(tmp_path)


async def test_second_launcher_on_the_same_home_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with (home / LOCK_FILE).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(StackError, match="another cift launcher already runs with home"):
            await stack_in(tmp_path).start()


def test_port_in_use_sees_a_listener_and_ensure_free_names_its_purpose() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert port_in_use("127.0.0.1", port)
        with pytest.raises(
            StackError, match=f"port {port} on 127.0.0.1 \\(gateway, CIFT_GATEWAY_PORT\\)"
        ):
            ensure_free("127.0.0.1", {"gateway, CIFT_GATEWAY_PORT": port})
    assert not port_in_use("127.0.0.1", port)


def test_password_in_a_dsn_never_reaches_the_terminal() -> None:
    assert redact_url("postgresql://app:s3cret@db:5432/cift") == "postgresql://app:***@db:5432/cift"
    assert redact_url("redis://:hunter2@cache:6379/0") == "redis://:***@cache:6379/0"
    assert redact_url("postgresql://postgres@127.0.0.1:55432/cift") == (
        "postgresql://postgres@127.0.0.1:55432/cift"
    )


def test_listening_table_lists_every_component_without_passwords(tmp_path: Path) -> None:
    info = sample_info(tmp_path)
    info = StackInfo.from_json(
        info.to_json().replace("postgres@127.0.0.1:55432", "app:s3cret@127.0.0.1:55432", 1)
    )
    table = listening_table(info)
    assert "s3cret" not in table
    lines = table.splitlines()
    assert lines[2].split() == [
        "PostgreSQL",
        "postgresql://app:***@127.0.0.1:55432/cift",
        "embedded",
    ]
    assert lines[3].split() == ["Redis", "redis://127.0.0.1:56379/0", "configured"]
    assert any(line.startswith("auth ") and "grpc://127.0.0.1:50051" in line for line in lines)
    assert any(line.startswith("gateway ") and "http://127.0.0.1:8080" in line for line in lines)


def test_format_table_aligns_columns() -> None:
    table = format_table(["a", "bb"], [["long cell", "x"], ["s", "yy"]])
    assert table.splitlines() == ["a          bb", "---------  --", "long cell  x", "s          yy"]


def test_password_is_read_from_the_first_line_of_piped_stdin() -> None:
    assert read_password(io.StringIO("correct horse battery\nignored\n")) == "correct horse battery"


def test_empty_piped_password_is_refused() -> None:
    with pytest.raises(StackError, match="a password is required"):
        read_password(io.StringIO(""))


def test_terminal_password_must_be_typed_twice_the_same() -> None:
    answers = iter(["first try 123", "first try 124"])
    with pytest.raises(StackError, match="the two passwords differ"):
        read_password(FakeTerminal(), prompt=lambda _: next(answers))
    answers = iter(["same one 123", "same one 123"])
    assert read_password(FakeTerminal(), prompt=lambda _: next(answers)) == "same one 123"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "synchronous_commit=on"),
        ({"CIFT_EMBEDDED_POSTGRES_SYNCHRONOUS_COMMIT": "false"}, "synchronous_commit=off"),
    ],
)
def test_the_embedded_postgres_commits_synchronously_unless_told_otherwise(
    tmp_path: Path, environ: dict[str, str], expected: str
) -> None:
    # An accepted order must survive a crash of the database; the fast setting is opt-in.
    config = load(StackConfig, environ)
    argv = postgres.server_argv(
        tmp_path,
        55432,
        durable=True,
        synchronous_commit=config.embedded_postgres_synchronous_commit,
    )
    settings = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-c"]
    assert expected in settings
    assert "fsync=off" not in settings
