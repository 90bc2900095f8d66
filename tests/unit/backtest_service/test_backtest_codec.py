"""The backtest wire format: money to the cent, statistics by name, opaque page tokens."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from google.protobuf import json_format

from cift.backtest.v1 import backtest_pb2
from cift.runtime.errors import InvalidArgument
from services.backtest import codec
from services.backtest.model import Run, RunSpec, RunStatus

SPEC = RunSpec(
    strategy="sma_cross",
    params={"fast": 10.0, "slow": 30.0},
    symbols=("GOOG",),
    timeframe="1Day",
    start=datetime(2004, 1, 1, tzinfo=UTC),
    end=datetime(2014, 1, 1, tzinfo=UTC),
    cash=Decimal("10000"),
    commission=Decimal("0.002"),
    engine="vector",
)
RUN = Run(
    id="6f1c1f3e-51a8-4d3a-9d3e-3a1c2b4d5e6f",
    user_id="u",
    status=RunStatus.RUNNING,
    spec=SPEC,
    bar_count=2148,
    progress=0.5,
    stage="running",
    error="",
    created_at=datetime(2026, 12, 5, 12, 0, 0, 123456, tzinfo=UTC),
    started_at=datetime(2026, 12, 5, 12, 0, 1, tzinfo=UTC),
    finished_at=None,
)


def test_money_statistics_are_decimals_to_the_cent_and_missing_figures_are_absent() -> None:
    wire = codec.stats_to_wire(
        {
            "start": "2004-08-19 00:00:00",
            "final_equity": 39770.029999999,
            "peak_equity": 40000.125,
            "commissions": 5,
            "trades": 65,
            "sharpe": 0.42,
            "sortino": None,
            "max_drawdown_pct": -33.5,
        }
    )
    assert (wire.final_equity, wire.peak_equity, wire.commissions) == ("39770.03", "40000.12", "5")
    assert (wire.trades, wire.sharpe, wire.max_drawdown_pct) == (65, 0.42, -33.5)
    assert not wire.HasField("sortino")
    assert not wire.HasField("win_rate_pct")


def test_a_run_without_a_result_has_no_stats_and_no_finish_time() -> None:
    wire = codec.run_to_wire(RUN)
    assert wire.status == backtest_pb2.BACKTEST_STATUS_RUNNING
    assert not wire.HasField("stats")
    assert not wire.HasField("finished_at")
    assert wire.started_at.ToDatetime(tzinfo=UTC) == RUN.started_at
    assert (wire.spec.cash, wire.spec.commission, list(wire.spec.symbols)) == (
        "10000",
        "0.002",
        ["GOOG"],
    )


def test_a_page_token_leads_back_to_the_run_it_was_made_after() -> None:
    token = codec.page_token(RUN)
    assert codec.parse_page_token(token) == (RUN.created_at, RUN.id)
    assert codec.parse_page_token("") is None


@pytest.mark.parametrize(
    "token",
    ["garbage!", "bm90LWEtdG9rZW4=", codec.page_token(dataclasses.replace(RUN, id="not-a-uuid"))],
)
def test_a_page_token_this_service_did_not_issue_is_invalid(token: str) -> None:
    with pytest.raises(InvalidArgument, match="page_token"):
        codec.parse_page_token(token)


def test_spec_params_travel_as_json_numbers_both_ways() -> None:
    wire = codec.spec_to_wire(SPEC)
    assert json_format.MessageToDict(wire.params) == {"fast": 10.0, "slow": 30.0}
    decoded = codec.spec_from_wire(wire, datetime(2026, 1, 1, tzinfo=UTC))
    assert decoded.params == {"fast": 10.0, "slow": 30.0}
