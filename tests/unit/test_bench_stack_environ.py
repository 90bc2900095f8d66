"""A bench's own stack starts without `cift up`'s simulated hour, whatever else it sets."""

from __future__ import annotations

from pathlib import Path

from bench.stack_environ import HISTORY_SETTING, bench_stack_environ
from cift.runtime.config import load_service
from cift.stack.launcher import Stack, StackOptions
from services.marketdata.config import MarketDataConfig


def test_a_bench_stack_has_no_simulated_history_and_keeps_its_settings(tmp_path: Path) -> None:
    environ = bench_stack_environ(
        {"PATH": "/usr/bin", HISTORY_SETTING: "3600"}, CIFT_LOG_LEVEL="WARNING"
    )
    assert environ == {"PATH": "/usr/bin", HISTORY_SETTING: "0", "CIFT_LOG_LEVEL": "WARNING"}
    stack = Stack(StackOptions(home=tmp_path, free_ports=True), environ)
    marketdata = load_service(
        MarketDataConfig, "marketdata", stack.service_environs()["marketdata"]
    )
    assert marketdata.marketdata_simulator_history_s == 0
