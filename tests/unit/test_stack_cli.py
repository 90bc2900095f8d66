"""`cift` with bad configuration: one line naming the problem, a non-zero exit, no traceback."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cift.stack.ports import free_ports, port_in_use


def cift_command() -> str:
    beside_python = Path(sys.executable).parent / "cift"
    found = str(beside_python) if beside_python.exists() else shutil.which("cift")
    assert found, "the cift console script is not installed (pip install -e .)"
    return found


def run_cift(
    environ: dict[str, str], *args: str, stdin: str = "", timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [cift_command(), *args],
        env=environ,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def only_line(stream: str) -> str:
    lines = stream.strip().splitlines()
    assert len(lines) == 1, stream
    assert "Traceback" not in stream
    return lines[0]


def test_up_with_a_taken_port_names_the_port_and_its_setting(
    cift_up_environ: dict[str, str],
) -> None:
    port = int(cift_up_environ["CIFT_EMBEDDED_POSTGRES_PORT"])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = run_cift(cift_up_environ, "up")
    assert result.returncode == 1
    assert only_line(result.stderr) == (
        f"cift: port {port} on 127.0.0.1 (embedded PostgreSQL, CIFT_EMBEDDED_POSTGRES_PORT) "
        "is already in use; stop whatever listens there or choose another port"
    )
    assert result.stdout == ""


def test_up_with_an_unreachable_database_names_it_without_its_password_and_stops_the_rest(
    cift_up_environ: dict[str, str],
) -> None:
    (closed_port,) = free_ports(1)
    environ = cift_up_environ | {
        "CIFT_DATABASE_URL": f"postgresql://trader:pw-s3cret@127.0.0.1:{closed_port}/cift",
        "CIFT_DEPENDENCY_TIMEOUT_S": "1",
    }
    result = run_cift(environ, "up")
    assert result.returncode == 1
    assert only_line(result.stderr) == (
        f"cift: PostgreSQL at postgresql://trader:***@127.0.0.1:{closed_port}/cift "
        "did not answer within 1 s: connection refused"
    )
    assert "pw-s3cret" not in result.stdout + result.stderr
    # The embedded Redis and Kafka it had started are gone again.
    assert not port_in_use("127.0.0.1", int(environ["CIFT_EMBEDDED_REDIS_PORT"]))
    assert not port_in_use("127.0.0.1", int(environ["CIFT_EMBEDDED_KAFKA_PORT"]))


def test_up_with_a_missing_envoy_binary_names_the_path(
    cift_up_environ: dict[str, str], tmp_path: Path
) -> None:
    missing = tmp_path / "no-envoy-here" / "envoy"
    result = run_cift(cift_up_environ | {"CIFT_ENVOY_BIN": str(missing)}, "up")
    assert result.returncode == 1
    assert only_line(result.stderr) == f"cift: envoy binary not found at {missing} (CIFT_ENVOY_BIN)"


def test_up_with_a_malformed_setting_names_the_variable(cift_up_environ: dict[str, str]) -> None:
    result = run_cift(cift_up_environ | {"CIFT_GATEWAY_PORT": "eighty"}, "up")
    assert result.returncode == 2
    assert only_line(result.stderr) == (
        "cift: configuration error: CIFT_GATEWAY_PORT must be an integer, not 'eighty'"
    )


def test_status_with_nothing_running_lists_every_component_down_and_fails(
    cift_up_environ: dict[str, str],
) -> None:
    result = run_cift(cift_up_environ, "status")
    assert result.returncode == 1
    rows = {
        line.split()[0] + (" metrics" if " metrics " in line else "")
        for line in result.stdout.splitlines()[2:]
    }
    assert {"PostgreSQL", "Redis", "Kafka", "auth", "risk metrics", "gateway"} <= rows
    assert "up" not in [line.split()[-1] for line in result.stdout.splitlines()[2:]]
    assert only_line(result.stderr).startswith("cift: down: PostgreSQL, Redis, Kafka, auth")


@pytest.mark.parametrize("stdin", ["", "\n"])
def test_user_create_without_a_password_creates_nothing(
    cift_up_environ: dict[str, str], stdin: str
) -> None:
    result = run_cift(cift_up_environ, "user", "create", "--email", "ops@example.com", stdin=stdin)
    assert result.returncode == 1
    assert only_line(result.stderr) == (
        "cift: a password is required: type it at the prompt or pipe it on stdin"
    )


def test_user_create_requires_an_email(cift_up_environ: dict[str, str]) -> None:
    result = run_cift(cift_up_environ, "user", "create", stdin="a fine password 1\n")
    assert result.returncode == 2
    assert "--email" in result.stderr


def test_marketdata_backfill_runs_the_services_own_command_with_every_option() -> None:
    from cift.stack.cli import backfill_argv, build_parser

    args = build_parser().parse_args(
        [
            "marketdata",
            "backfill",
            "--provider",
            "alpaca",
            "--symbols",
            "AAPL,MSFT",
            "--start",
            "2024-01-02",
            "--end",
            "2024-03-28",
            "--timeframe",
            "1Min",
        ]
    )
    argv = backfill_argv(args)
    assert argv[1:4] == ["-m", "services.marketdata", "backfill"]
    assert argv[4:] == [
        "--provider", "alpaca", "--symbols", "AAPL,MSFT", "--start", "2024-01-02",
        "--end", "2024-03-28", "--timeframe", "1Min", "--kinds", "bars,trades",
    ]  # fmt: skip
