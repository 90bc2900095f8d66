"""The live pre-trade checks in a backtest over REST: tight limits refuse orders, and the
refusals come back on the run and are kept in the service's schema."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import asyncpg
import grpc
import polars as pl
import pytest

from cift.backtest import run_backtest
from cift.backtest.v1 import backtest_pb2, backtest_pb2_grpc
from cift.trading.pretrade.limits import RiskLimits
from tests.e2e.e2e_client import Rest, Trader, bearer, to_json
from tests.integration.backtest.backtest_it import SMA_CROSS, finished
from tests.integration.backtest.test_backtest_streams import sma_cross

pytestmark = pytest.mark.integration


async def test_tight_limits_refuse_orders_and_the_refusals_are_returned_and_stored(
    rest: Rest, trader: Trader, goog: pl.DataFrame, db: asyncpg.Connection
) -> None:
    # GOOG traded near $100 and up: an all-in order of 10,000 is ~100 shares, over 40.
    body = {
        **SMA_CROSS,
        "engine": "event",
        "marginMultiplier": "2",
        "limits": {"maxOrderQty": "40", "allowShort": False},
    }
    run = rest.ok("POST", "/v1/backtests", token=trader.access_token, json=body)["backtest"]
    assert run["spec"]["marginMultiplier"] == "2"
    assert run["spec"]["limits"] == {"maxOrderQty": "40", "allowShort": False}
    done = finished(rest, trader.access_token, run["id"])
    assert done["status"] == "BACKTEST_STATUS_SUCCEEDED", done["error"]

    expected = run_backtest(
        goog, "sma_cross", {"fast": 10, "slow": 30}, cash=10_000, commission=0.002,
        engine="event", margin_multiplier=2,
        limits=dataclasses.replace(RiskLimits(), max_order_qty=Decimal(40), allow_short=False),
    )  # fmt: skip
    assert expected.rejections is not None and expected.rejections.height > 0
    rejections = done["rejections"]
    assert (
        done["stats"]["rejectedOrders"] == str(expected.rejections.height) == str(len(rejections))
    )
    assert [(r["side"], r["type"], r["reason"], r["message"]) for r in rejections] == [
        (row["side"], row["order_type"], row["reason"], row["message"])
        for row in expected.rejections.iter_rows(named=True)
    ]
    assert {r["reason"] for r in rejections} <= {"MAX_ORDER_QTY", "SHORT_NOT_ALLOWED"}
    assert all(r["symbol"] == "GOOG" and r["time"].endswith("Z") for r in rejections)
    assert [Decimal(r["qty"]) for r in rejections] == [
        Decimal(repr(qty)) for qty in expected.rejections["qty"].to_list()
    ]
    assert Decimal(done["stats"]["finalEquity"]) == round(
        Decimal(repr(expected.stats["final_equity"])), 2
    )

    stored = await db.fetch(
        "SELECT reason, qty FROM backtest.rejections WHERE run_id = $1 ORDER BY seq",
        run["id"],
    )
    assert [(row["reason"], row["qty"]) for row in stored] == [
        (r["reason"], Decimal(r["qty"])) for r in rejections
    ]
    margin = await db.fetchval(
        "SELECT margin_multiplier FROM backtest.runs WHERE id = $1", run["id"]
    )
    assert margin == 2
    # Lists leave the rows out but keep the count.
    (listed,) = [
        b
        for b in rest.ok("GET", "/v1/backtests", token=trader.access_token)["backtests"]
        if b["id"] == run["id"]
    ]
    assert listed["rejections"] == []
    assert listed["stats"]["rejectedOrders"] == done["stats"]["rejectedOrders"]


def test_a_vector_run_reports_no_rejected_orders(
    rest: Rest, trader: Trader, goog: pl.DataFrame
) -> None:
    run = rest.ok("POST", "/v1/backtests", token=trader.access_token, json=SMA_CROSS)["backtest"]
    done = finished(rest, trader.access_token, run["id"])
    assert done["status"] == "BACKTEST_STATUS_SUCCEEDED", done["error"]
    assert done["stats"]["rejectedOrders"] == "0"
    assert done["rejections"] == []


def test_run_backtest_ends_with_the_refused_orders_as_stored(
    channel: grpc.Channel, rest: Rest, trader: Trader, goog: pl.DataFrame
) -> None:
    request = sma_cross(engine="event")
    request.spec.limits.CopyFrom(backtest_pb2.BacktestRiskLimits(max_order_qty="40"))
    stub = backtest_pb2_grpc.BacktestServiceStub(channel)
    events = list(stub.RunBacktest(request, metadata=bearer(trader.access_token), timeout=60))
    backtest = events[-1].backtest
    assert backtest.status == backtest_pb2.BACKTEST_STATUS_SUCCEEDED, backtest.error
    assert backtest.stats.rejected_orders == len(backtest.rejections) > 0
    assert {r.reason for r in backtest.rejections} == {"MAX_ORDER_QTY"}
    stored = rest.ok("GET", f"/v1/backtests/{backtest.id}", token=trader.access_token)
    assert stored["backtest"] == to_json(backtest)
