"""Backtests over REST through the gateway: run, read, list, refuse, and keep to their owner."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import asyncpg
import polars as pl
import pytest

from tests.e2e.e2e_client import Rest, Trader, register_and_login
from tests.integration.backtest.backtest_it import SMA_CROSS, Json, finished, library_result

pytestmark = pytest.mark.integration


async def stored_runs(db: asyncpg.Connection, user_id: str) -> int:
    count: int = await db.fetchval("SELECT count(*) FROM backtest.runs WHERE user_id = $1", user_id)
    return count


def test_strategies_are_listed_with_their_parameter_schemas(rest: Rest, trader: Trader) -> None:
    strategies = rest.ok("GET", "/v1/strategies", token=trader.access_token)["strategies"]
    by_name = {s["name"]: s for s in strategies}
    assert set(by_name) == {"sma_cross", "rsi_reversion", "bbands_breakout", "macd_cross"}
    params = {p["name"]: p for p in by_name["sma_cross"]["params"]}
    assert (params["fast"]["default"], params["fast"]["type"]) == (10, "int")
    assert (params["slow"]["default"], params["slow"]["type"]) == (30, "int")
    assert all(s["description"] for s in strategies)


async def test_a_posted_backtest_runs_in_the_background_and_reports_the_librarys_result(
    rest: Rest, trader: Trader, goog: pl.DataFrame, db: asyncpg.Connection
) -> None:
    created = rest.ok("POST", "/v1/backtests", token=trader.access_token, json=SMA_CROSS)
    run = created["backtest"]
    assert run["status"] in ("BACKTEST_STATUS_QUEUED", "BACKTEST_STATUS_RUNNING")
    assert run["barCount"] == str(goog.height)
    assert run["spec"]["symbols"] == ["GOOG"]
    assert run["spec"]["params"] == {"fast": 10, "slow": 30, "short": 1}

    done = finished(rest, trader.access_token, run["id"])
    assert done["status"] == "BACKTEST_STATUS_SUCCEEDED", done["error"]
    assert (done["progress"], done["stage"], done["error"]) == (1, "done", "")
    expected = library_result(goog)
    stats = done["stats"]
    # backtesting.py's own SmaCross example on this data: 65 trades, 39,770.03.
    assert stats["trades"] == "65" == str(expected.stats["trades"])
    assert Decimal(stats["finalEquity"]) == Decimal("39770.03")
    assert stats["sharpe"] == pytest.approx(expected.stats["sharpe"])
    assert stats["maxDrawdownPct"] == pytest.approx(expected.stats["max_drawdown_pct"])
    assert Decimal(stats["commissions"]) == round(Decimal(str(expected.stats["commissions"])), 2)

    trades = done["trades"]
    assert len(trades) == 65
    first = expected.trades.row(0, named=True)
    assert trades[0]["symbol"] == "GOOG"
    assert trades[0]["side"] == ("long" if first["size"] > 0 else "short")
    assert Decimal(trades[0]["qty"]) == abs(Decimal(first["size"]))
    assert Decimal(trades[0]["entryPrice"]) == Decimal(repr(first["entry_price"]))
    # Every closed trade's P&L to the cent, as the library computed it.
    assert [Decimal(t["pnl"]) for t in trades] == [
        round(Decimal(repr(pnl)), 2) for pnl in expected.trades["pnl"].to_list()
    ]
    equity = done["equity"]
    assert len(equity) == goog.height
    assert Decimal(equity[-1]["equity"]) == Decimal(stats["finalEquity"])
    assert equity[0]["timestamp"] == "2004-08-19T00:00:00Z"
    assert min(point["drawdownPct"] for point in equity) == pytest.approx(stats["maxDrawdownPct"])

    listed = rest.ok("GET", "/v1/backtests", token=trader.access_token)["backtests"]
    assert [b["id"] for b in listed] == [run["id"]]
    # Lists carry no result rows, only the summary.
    assert (listed[0]["trades"], listed[0]["equity"]) == ([], [])
    assert listed[0]["stats"]["finalEquity"] == stats["finalEquity"]
    assert await stored_runs(db, trader.user_id) == 1


def test_the_event_engine_runs_through_the_service_too(
    rest: Rest, trader: Trader, goog: pl.DataFrame
) -> None:
    body = {**SMA_CROSS, "engine": "event"}
    run = rest.ok("POST", "/v1/backtests", token=trader.access_token, json=body)["backtest"]
    done = finished(rest, trader.access_token, run["id"])
    assert done["status"] == "BACKTEST_STATUS_SUCCEEDED", done["error"]
    expected = library_result(goog, engine="event")
    assert done["stats"]["trades"] == str(expected.stats["trades"])
    assert Decimal(done["stats"]["finalEquity"]) == round(
        Decimal(repr(expected.stats["final_equity"])), 2
    )


def test_runs_page_newest_first(rest: Rest, trader: Trader, goog: pl.DataFrame) -> None:
    ids = [
        rest.ok("POST", "/v1/backtests", token=trader.access_token, json=SMA_CROSS)["backtest"][
            "id"
        ]
        for _ in range(3)
    ]
    first = rest.ok("GET", "/v1/backtests", token=trader.access_token, params={"pageSize": "2"})
    assert [b["id"] for b in first["backtests"]] == ids[:0:-1]
    rest_of = rest.ok(
        "GET",
        "/v1/backtests",
        token=trader.access_token,
        params={"pageSize": "2", "pageToken": first["nextPageToken"]},
    )
    assert [b["id"] for b in rest_of["backtests"]] == ids[:1]
    assert rest_of["nextPageToken"] == ""
    for backtest_id in ids:
        finished(rest, trader.access_token, backtest_id)


def test_another_users_backtest_is_not_found_for_reading_listing_or_canceling(
    rest: Rest, trader: Trader, goog: pl.DataFrame
) -> None:
    run = rest.ok("POST", "/v1/backtests", token=trader.access_token, json=SMA_CROSS)["backtest"]
    other = register_and_login(rest, "other-backtester")
    for method in ("GET", "DELETE"):
        response = rest.call(method, f"/v1/backtests/{run['id']}", token=other.access_token)
        assert response.status_code == 404, response.text
        assert response.json()["message"] == "No such backtest."
    assert rest.ok("GET", "/v1/backtests", token=other.access_token)["backtests"] == []
    assert finished(rest, trader.access_token, run["id"])["status"] == "BACKTEST_STATUS_SUCCEEDED"


BAD_REQUESTS: list[tuple[str, Json, str]] = [
    ("unknown strategy", {"strategy": "moon_phase"}, "Unknown strategy 'moon_phase'"),
    ("unknown parameter", {"params": {"fast": 10, "speed": 3}}, "Unknown parameter speed"),
    ("fractional period", {"params": {"fast": 10.5}}, "whole number"),
    ("parameter not a number", {"params": {"fast": {}}}, "must be a number"),
    ("parameter a word", {"params": {"fast": "ten"}}, "must be a number"),
    ("fast not below slow", {"params": {"fast": 30, "slow": 10}}, "fast"),
    (
        "empty range",
        {"start": "1990-01-01T00:00:00Z", "end": "1991-01-01T00:00:00Z"},
        "the range is empty",
    ),
    ("start after end", {"start": "2014-01-01T00:00:00Z", "end": "2004-01-01T00:00:00Z"}, "empty"),
    (
        "too few bars for the periods",  # GOOG's first 30 days; slow=30 trades at bar 31
        {"end": "2004-09-30T12:00:00Z"},
        "can trade at bar 31 at the earliest (its first signal needs 30 bars, then the next "
        "bar's open); these bars hold 30",
    ),
    ("no start", {"start": None}, "start is required"),
    ("unknown symbol", {"symbol": "NOPE"}, "NOPE"),
    ("no symbol", {"symbol": ""}, "Name the symbol"),
    ("cash not a decimal", {"cash": "lots"}, "cash"),
    ("negative cash", {"cash": "-5"}, "cash"),
    ("commission of 50 %", {"commission": "0.5"}, "commission"),
    ("unknown engine", {"engine": "warp"}, "engine"),
    ("unknown timeframe", {"timeframe": "3Min"}, "timeframe"),
    ("margin above 4", {"engine": "event", "marginMultiplier": "5"}, "margin_multiplier is"),
    ("margin on vector", {"marginMultiplier": "2"}, "event engine"),
    ("limits on vector", {"limits": {"maxOrderQty": "5"}}, "event engine"),
    (
        "negative limit",
        {"engine": "event", "limits": {"maxOrderQty": "-5"}},
        "max_order_qty must be greater than zero",
    ),
]


@pytest.mark.parametrize(
    ("change", "message"),
    [(change, message) for _, change, message in BAD_REQUESTS],
    ids=[name for name, _, _ in BAD_REQUESTS],
)
async def test_bad_input_is_400_invalid_argument_and_stores_nothing(
    rest: Rest,
    trader: Trader,
    goog: pl.DataFrame,
    db: asyncpg.Connection,
    change: Json,
    message: str,
) -> None:
    body: dict[str, Any] = {**SMA_CROSS, **change}
    body = {key: value for key, value in body.items() if value is not None}
    response = rest.call("POST", "/v1/backtests", token=trader.access_token, json=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["code"] == 3  # INVALID_ARGUMENT
    assert message.lower() in error["message"].lower(), error["message"]
    assert await stored_runs(db, trader.user_id) == 0
    assert rest.ok("GET", "/v1/backtests", token=trader.access_token)["backtests"] == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/backtests"),
        ("GET", "/v1/backtests"),
        ("GET", "/v1/backtests/00000000-0000-0000-0000-000000000000"),
        ("DELETE", "/v1/backtests/00000000-0000-0000-0000-000000000000"),
        ("GET", "/v1/strategies"),
    ],
)
def test_every_route_needs_a_credential(rest: Rest, method: str, path: str) -> None:
    response = rest.call(method, path, json=SMA_CROSS if method == "POST" else None)
    assert response.status_code == 401, response.text
    forged = rest.call(method, path, token="not-a-jwt", json=None)
    assert forged.status_code == 401, forged.text


def test_an_unknown_backtest_id_is_not_found(rest: Rest, trader: Trader) -> None:
    for backtest_id in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        response = rest.call("GET", f"/v1/backtests/{backtest_id}", token=trader.access_token)
        assert response.status_code == 404, response.text
