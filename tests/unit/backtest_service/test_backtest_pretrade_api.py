"""The pre-trade part of a backtest request: margin multiplier, risk limits, refused orders.

Bad values are INVALID_ARGUMENT before the service loads a bar or writes a row; the
refused orders and their count go out on the wire as the library reported them.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NoReturn

import polars as pl
import pytest
from google.protobuf import json_format

from cift.backtest.v1 import backtest_pb2
from cift.runtime.errors import InvalidArgument
from cift.runtime.identity import Identity
from services.backtest import codec
from services.backtest.engine import LibraryEngine, rejection_records
from services.backtest.model import Rejection, Run, RunSpec, RunStatus
from services.backtest.runs import Backtests

NOW = datetime(2026, 12, 5, tzinfo=UTC)
BASE = {
    "strategy": "sma_cross",
    "symbols": ["GOOG"],
    "start": "2004-01-01T00:00:00Z",
    "end": "2014-01-01T00:00:00Z",
}


def decode(**changes: Any) -> RunSpec:
    wire = json_format.ParseDict({**BASE, **changes}, backtest_pb2.BacktestSpec())
    return codec.spec_from_wire(wire, NOW)


def test_margin_and_limits_reach_the_spec_and_travel_back_the_same() -> None:
    spec = decode(
        engine="event",
        marginMultiplier="2.5",
        limits={"maxOrderQty": "5", "maxOpenOrders": 3, "allowShort": False},
    )
    assert spec.margin_multiplier == Decimal("2.5")
    assert spec.limits == {"max_order_qty": Decimal(5), "max_open_orders": 3, "allow_short": False}
    wire = codec.spec_to_wire(spec)
    assert json_format.MessageToDict(wire)["limits"] == {
        "maxOrderQty": "5",
        "maxOpenOrders": 3,
        "allowShort": False,
    }
    assert wire.margin_multiplier == "2.5"
    assert codec.spec_from_wire(wire, NOW).limits == spec.limits


def test_without_margin_or_limits_the_run_is_a_new_live_cash_account() -> None:
    spec = decode(engine="event")
    assert (spec.margin_multiplier, spec.limits) == (Decimal(1), None)
    assert not codec.spec_to_wire(spec).HasField("limits")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"marginMultiplier": "2"}, "apply to the event engine"),
        ({"limits": {}}, "apply to the event engine"),
        ({"limits": {"maxOrderQty": "5"}}, "apply to the event engine"),
        ({"engine": "event", "marginMultiplier": "x"}, "margin_multiplier must be a plain"),
        ({"engine": "event", "limits": {"maxOrderQty": "-5"}}, "max_order_qty must be greater"),
        ({"engine": "event", "limits": {"maxGrossExposure": "0"}}, "max_gross_exposure must"),
        ({"engine": "event", "limits": {"maxOpenOrders": 0}}, "max_open_orders must be at"),
        ({"engine": "event", "limits": {"priceCollarPct": "150"}}, "price_collar_pct must"),
        ({"engine": "event", "limits": {"maxOrderNotional": "1e3"}}, "must be a plain decimal"),
    ],
)
def test_bad_margin_or_limits_are_invalid_argument(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        decode(**changes)


@pytest.mark.parametrize("margin", ["0.5", "4.01", "0"])
def test_the_engine_refuses_a_margin_multiplier_outside_1_to_4(margin: str) -> None:
    spec = decode(engine="event", marginMultiplier=margin)
    with pytest.raises(InvalidArgument, match="margin_multiplier is between 1"):
        LibraryEngine(max_equity_points=10).resolve(spec)


class Untouchable:
    """A pool and a bar source a refused request must never reach."""

    def acquire(self) -> NoReturn:
        raise AssertionError("a refused request reached the database")

    async def load(self, spec: RunSpec) -> NoReturn:
        raise AssertionError("a refused request loaded bars")


async def test_a_refused_margin_loads_no_bars_and_writes_nothing() -> None:
    untouchable = Untouchable()
    backtests = Backtests(
        untouchable,  # type: ignore[arg-type]
        untouchable,
        LibraryEngine(max_equity_points=10),
        max_concurrent=1,
        max_bars=1000,
        heartbeat_s=1,
        orphan_after_s=10,
    )
    caller = Identity(user_id="u", account_id="a", scopes=frozenset({"read"}))
    with pytest.raises(InvalidArgument, match="margin_multiplier is between 1"):
        await backtests.create(caller, decode(engine="event", marginMultiplier="5"))


def test_refused_orders_and_their_count_go_out_on_the_wire() -> None:
    frame = pl.DataFrame(
        {
            "bar": [3],
            "time": pl.Series([1_100_000_000_000_000_000], dtype=pl.Int64).cast(pl.Datetime("ns")),
            "order_id": ["o1"],
            "symbol": ["GOOG"],
            "side": ["buy"],
            "order_type": ["market"],
            "qty": [95.0],
            "reason": ["MAX_ORDER_QTY"],
            "message": ["Order quantity 95 exceeds the limit of 5."],
        }
    )
    (rejection,) = rejection_records(frame)
    assert rejection == Rejection(
        time=datetime(2004, 11, 9, 11, 33, 20, tzinfo=UTC),
        symbol="GOOG",
        side="buy",
        qty=Decimal("95.0"),
        type="market",
        reason="MAX_ORDER_QTY",
        message="Order quantity 95 exceeds the limit of 5.",
    )
    assert rejection_records(None) == ()
    run = Run(
        id="6f1c1f3e-51a8-4d3a-9d3e-3a1c2b4d5e6f",
        user_id="u",
        status=RunStatus.SUCCEEDED,
        spec=decode(engine="event"),
        bar_count=10,
        progress=1,
        stage="done",
        error="",
        created_at=NOW,
        started_at=NOW,
        finished_at=NOW,
        stats={"final_equity": 10_000.0, "trades": 0, "rejected_orders": 1},
        rejections=(dataclasses.replace(rejection, qty=Decimal(95)),),
    )
    wire = json_format.MessageToDict(codec.run_to_wire(run))
    assert wire["stats"]["rejectedOrders"] == "1"
    assert wire["rejections"] == [
        {
            "time": "2004-11-09T11:33:20Z",
            "symbol": "GOOG",
            "side": "buy",
            "qty": "95",
            "type": "market",
            "reason": "MAX_ORDER_QTY",
            "message": "Order quantity 95 exceeds the limit of 5.",
        }
    ]
