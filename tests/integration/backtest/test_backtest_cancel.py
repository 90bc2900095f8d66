"""Canceling a backtest through the gateway: a running one stops and keeps no result."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.e2e.e2e_client import Rest, Trader
from tests.integration.backtest.backtest_it import Json, finished
from tests.integration.backtest.conftest import LONG_SYMBOL

pytestmark = pytest.mark.integration

# Minute bars through the event engine: seconds of work, so a cancel lands mid-run.
LONG_RUN: Json = {
    "strategy": "sma_cross",
    "params": {"fast": 5, "slow": 20},
    "symbol": LONG_SYMBOL,
    "timeframe": "1Min",
    "start": "2021-01-01T00:00:00Z",
    "end": "2022-01-01T00:00:00Z",
    "engine": "event",
}


async def test_a_canceled_run_stops_and_keeps_no_result(
    rest: Rest, trader: Trader, long_history: int, db: asyncpg.Connection
) -> None:
    run = rest.ok("POST", "/v1/backtests", token=trader.access_token, json=LONG_RUN)["backtest"]
    assert run["barCount"] == str(long_history)
    canceled = rest.ok("DELETE", f"/v1/backtests/{run['id']}", token=trader.access_token)
    assert canceled["backtest"]["status"] == "BACKTEST_STATUS_CANCELED"
    assert canceled["backtest"]["finishedAt"]

    # Long enough for the run to have finished had it not stopped; it stays canceled.
    await asyncio.sleep(5)
    after = finished(rest, trader.access_token, run["id"])
    assert after["status"] == "BACKTEST_STATUS_CANCELED"
    assert (after["trades"], after["equity"]) == ([], [])
    assert "stats" not in after or after["stats"] is None
    for table in ("trades", "equity"):
        rows = await db.fetchval(
            f"SELECT count(*) FROM backtest.{table} WHERE run_id = $1::uuid", run["id"]
        )
        assert rows == 0, table

    again = rest.call("DELETE", f"/v1/backtests/{run['id']}", token=trader.access_token)
    assert again.status_code == 400, again.text  # FAILED_PRECONDITION
    assert "already canceled" in again.json()["message"]
