"""RunBacktest through the gateway over native gRPC and gRPC-Web: progress, then the result."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import grpc
import polars as pl
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from cift.backtest.v1 import backtest_pb2, backtest_pb2_grpc
from tests.e2e.e2e_client import Rest, Trader, bearer, to_json
from tests.integration.backtest import grpcweb
from tests.integration.backtest.backtest_it import library_result

pytestmark = pytest.mark.integration

RUN = "/cift.backtest.v1.BacktestService/RunBacktest"
GET = "/cift.backtest.v1.BacktestService/GetBacktest"


def stamp(year: int) -> Timestamp:
    moment = Timestamp()
    moment.FromDatetime(datetime(year, 1, 1, tzinfo=UTC))
    return moment


def sma_cross(**changes: object) -> backtest_pb2.RunBacktestRequest:
    spec = backtest_pb2.BacktestSpec(
        strategy="sma_cross",
        symbols=["goog"],
        timeframe="1Day",
        start=stamp(2004),
        end=stamp(2014),
        cash="10000",
        commission="0.002",
    )
    spec.params.update({"fast": 10, "slow": 30})
    for name, value in changes.items():
        if isinstance(value, Timestamp):
            getattr(spec, name).CopyFrom(value)
        else:
            setattr(spec, name, value)
    return backtest_pb2.RunBacktestRequest(spec=spec)


def assert_progress_then_result(
    events: list[backtest_pb2.RunBacktestResponse], bars: pl.DataFrame
) -> backtest_pb2.Backtest:
    """Progress messages naming one run, never going back, then the finished run."""
    *progress, last = events
    assert progress and all(e.WhichOneof("event") == "progress" for e in progress)
    assert last.WhichOneof("event") == "backtest"
    first = progress[0].progress
    assert first.backtest_id and first.status in (
        backtest_pb2.BACKTEST_STATUS_QUEUED,
        backtest_pb2.BACKTEST_STATUS_RUNNING,
    )
    fractions = [e.progress.progress for e in progress]
    assert fractions == sorted(fractions)
    assert {e.progress.backtest_id for e in progress} == {first.backtest_id}
    backtest = last.backtest
    assert backtest.id == first.backtest_id
    assert backtest.status == backtest_pb2.BACKTEST_STATUS_SUCCEEDED, backtest.error
    assert list(backtest.spec.symbols) == ["GOOG"]
    expected = library_result(bars)
    assert backtest.stats.trades == expected.stats["trades"] == 65
    assert Decimal(backtest.stats.final_equity) == Decimal("39770.03")
    assert len(backtest.trades) == 65
    assert len(backtest.equity) == bars.height
    return backtest


def test_run_backtest_streams_progress_then_the_result_over_grpc(
    channel: grpc.Channel, rest: Rest, trader: Trader, goog: pl.DataFrame
) -> None:
    stub = backtest_pb2_grpc.BacktestServiceStub(channel)
    events = list(stub.RunBacktest(sma_cross(), metadata=bearer(trader.access_token), timeout=60))
    backtest = assert_progress_then_result(events, goog)
    # The streamed run is the stored one, as REST reads it back.
    stored = rest.ok("GET", f"/v1/backtests/{backtest.id}", token=trader.access_token)
    assert stored["backtest"] == to_json(backtest)


def test_run_backtest_streams_progress_then_the_result_over_grpc_web(
    gateway_url: str, trader: Trader, goog: pl.DataFrame
) -> None:
    answer = grpcweb.call(gateway_url, RUN, sma_cross(), token=trader.access_token)
    assert (answer.http_status, answer.grpc_status) == (200, 0), answer.grpc_message
    events = [backtest_pb2.RunBacktestResponse.FromString(m) for m in answer.messages]
    backtest = assert_progress_then_result(events, goog)
    read = grpcweb.call(
        gateway_url,
        GET,
        backtest_pb2.GetBacktestRequest(backtest_id=backtest.id),
        token=trader.access_token,
    )
    assert read.grpc_status == 0, read.grpc_message
    assert backtest_pb2.GetBacktestResponse.FromString(read.messages[0]).backtest == backtest


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"strategy": "moon_phase"}, "Unknown strategy"),
        ({"start": stamp(1990), "end": stamp(1991)}, "the range is empty"),
        ({"engine": "warp"}, "engine"),
        ({"engine": "event", "margin_multiplier": "0.5"}, "margin_multiplier is between 1"),
    ],
    ids=["unknown strategy", "empty range", "unknown engine", "margin below 1"],
)
async def test_bad_input_ends_the_stream_with_invalid_argument_and_stores_nothing(
    channel: grpc.Channel,
    gateway_url: str,
    trader: Trader,
    goog: pl.DataFrame,
    db: asyncpg.Connection,
    change: dict[str, object],
    message: str,
) -> None:
    request = sma_cross(**change)
    stub = backtest_pb2_grpc.BacktestServiceStub(channel)
    with pytest.raises(grpc.RpcError) as raised:
        list(stub.RunBacktest(request, metadata=bearer(trader.access_token), timeout=60))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message.lower() in (raised.value.details() or "").lower()
    web = grpcweb.call(gateway_url, RUN, request, token=trader.access_token)
    assert (web.grpc_status, web.messages) == (grpc.StatusCode.INVALID_ARGUMENT.value[0], [])
    assert message.lower() in web.grpc_message.lower()
    stored = await db.fetchval(
        "SELECT count(*) FROM backtest.runs WHERE user_id = $1", trader.user_id
    )
    assert stored == 0


def test_streams_need_a_credential(channel: grpc.Channel, gateway_url: str) -> None:
    stub = backtest_pb2_grpc.BacktestServiceStub(channel)
    with pytest.raises(grpc.RpcError) as raised:
        list(stub.RunBacktest(sma_cross(), timeout=30))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    web = grpcweb.call(gateway_url, RUN, sma_cross())
    assert web.grpc_status == grpc.StatusCode.UNAUTHENTICATED.value[0]
    assert web.messages == []
