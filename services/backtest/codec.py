"""Protobuf messages to the service's values and back.

Wire decimals go through `cift.runtime.money`, timestamps through UTC datetimes.
Requests are only decoded here; what they must satisfy is `spec.py`'s.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from cift.backtest.v1 import backtest_pb2
from cift.runtime.errors import InvalidArgument
from cift.runtime.limits_wire import limit_overrides_from_wire
from cift.runtime.money import format_decimal
from cift.runtime.order_wire import enum_to_pb
from cift.runtime.page_cursors import FOREIGN_TOKEN, decode_cursor, encode_cursor
from cift.runtime.timestamps import timestamp_of
from cift.trading.money import cents_of_float, to_cents
from services.backtest.model import (
    EquityPoint,
    Progress,
    Rejection,
    Run,
    RunSpec,
    RunStatus,
    Stats,
    StrategyInfo,
    TradeRecord,
)
from services.backtest.spec import build_spec, check_limits

STATUSES = enum_to_pb(RunStatus, backtest_pb2.BacktestStatus, "BACKTEST_STATUS_")


def _datetime(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def limits_from_wire(
    wire: backtest_pb2.BacktestRiskLimits,
) -> dict[str, Decimal | int | bool]:
    """The limits the request set (present fields only), checked."""
    return check_limits(limit_overrides_from_wire(wire, field_prefix="limits."))


def limits_to_wire(limits: Mapping[str, Decimal | int | bool]) -> backtest_pb2.BacktestRiskLimits:
    wire = backtest_pb2.BacktestRiskLimits()
    for name, value in limits.items():
        setattr(wire, name, format_decimal(value) if isinstance(value, Decimal) else value)
    return wire


def spec_from_wire(wire: backtest_pb2.BacktestSpec, now: datetime) -> RunSpec:
    return build_spec(
        strategy=wire.strategy.strip(),
        params=json_format.MessageToDict(wire.params),
        symbol=wire.symbol,
        symbols=wire.symbols,
        timeframe=wire.timeframe.strip(),
        start=_datetime(wire.start) if wire.HasField("start") else None,
        end=_datetime(wire.end) if wire.HasField("end") else None,
        cash=wire.cash,
        commission=wire.commission,
        engine=wire.engine,
        now=now,
        margin_multiplier=wire.margin_multiplier.strip(),
        limits=limits_from_wire(wire.limits) if wire.HasField("limits") else None,
    )


def spec_to_wire(spec: RunSpec) -> backtest_pb2.BacktestSpec:
    wire = backtest_pb2.BacktestSpec(
        strategy=spec.strategy,
        symbols=list(spec.symbols),
        timeframe=spec.timeframe,
        start=timestamp_of(spec.start),
        end=timestamp_of(spec.end),
        cash=format_decimal(spec.cash),
        commission=format_decimal(spec.commission),
        engine=spec.engine,
        margin_multiplier=format_decimal(spec.margin_multiplier),
    )
    if spec.limits is not None:
        wire.limits.CopyFrom(limits_to_wire(spec.limits))
    params: dict[str, Any] = dict(spec.params)
    wire.params.update(params)
    return wire


# Statistics that are money: decimal strings to the cent on the wire.
MONEY_STATS = ("final_equity", "peak_equity", "commissions")


def money(value: float | int | str | None) -> str:
    """An engine's float amount as a decimal string to the cent."""
    if value is None:
        return ""
    if isinstance(value, float):
        return format_decimal(cents_of_float(value))
    return format_decimal(to_cents(Decimal(str(value))))


def stats_to_wire(stats: Stats) -> backtest_pb2.BacktestStats:
    """Every statistic the message names; the rest (start, end) are in the spec."""
    wire = backtest_pb2.BacktestStats()
    for field in wire.DESCRIPTOR.fields:
        value = stats.get(field.name)
        if value is None or (isinstance(value, str) and field.name not in MONEY_STATS):
            continue
        if field.name in MONEY_STATS:
            setattr(wire, field.name, money(value))
        elif field.type == field.TYPE_INT64:
            setattr(wire, field.name, int(value))
        else:
            setattr(wire, field.name, float(value))
    return wire


def trade_to_wire(trade: TradeRecord) -> backtest_pb2.BacktestTrade:
    return backtest_pb2.BacktestTrade(
        symbol=trade.symbol,
        side=trade.side,
        qty=format_decimal(trade.qty),
        entry_time=timestamp_of(trade.entry_time),
        exit_time=timestamp_of(trade.exit_time),
        entry_price=format_decimal(trade.entry_price),
        exit_price=format_decimal(trade.exit_price),
        pnl=format_decimal(trade.pnl),
        return_pct=trade.return_pct,
        commission=format_decimal(trade.commission),
    )


def equity_to_wire(point: EquityPoint) -> backtest_pb2.EquityPoint:
    return backtest_pb2.EquityPoint(
        timestamp=timestamp_of(point.timestamp),
        equity=format_decimal(point.equity),
        drawdown_pct=point.drawdown_pct,
    )


def rejection_to_wire(rejection: Rejection) -> backtest_pb2.BacktestRejection:
    return backtest_pb2.BacktestRejection(
        time=timestamp_of(rejection.time),
        symbol=rejection.symbol,
        side=rejection.side,
        qty=format_decimal(rejection.qty),
        type=rejection.type,
        reason=rejection.reason,
        message=rejection.message,
    )


def run_to_wire(run: Run) -> backtest_pb2.Backtest:
    return backtest_pb2.Backtest(
        id=run.id,
        status=STATUSES[run.status],
        spec=spec_to_wire(run.spec),
        progress=run.progress,
        stage=run.stage,
        error=run.error,
        bar_count=run.bar_count,
        created_at=timestamp_of(run.created_at),
        trades=[trade_to_wire(trade) for trade in run.trades],
        equity=[equity_to_wire(point) for point in run.equity],
        rejections=[rejection_to_wire(rejection) for rejection in run.rejections],
        started_at=timestamp_of(run.started_at),
        finished_at=timestamp_of(run.finished_at),
        stats=None if run.stats is None else stats_to_wire(run.stats),
    )


def progress_to_wire(progress: Progress) -> backtest_pb2.BacktestProgress:
    return backtest_pb2.BacktestProgress(
        backtest_id=progress.run_id,
        status=STATUSES[progress.status],
        progress=progress.progress,
        stage=progress.stage,
    )


def strategy_to_wire(info: StrategyInfo) -> backtest_pb2.Strategy:
    return backtest_pb2.Strategy(
        name=info.name,
        description=info.description,
        params=[
            backtest_pb2.StrategyParam(
                name=param.name,
                description=param.description,
                type=param.type,
                default=param.default,
                min=param.min,
                max=param.max,
            )
            for param in info.params
        ],
    )


def page_token(run: Run) -> str:
    """An opaque cursor after `run` in newest-first order."""
    return encode_cursor(run.created_at, run.id)


def parse_page_token(token: str) -> tuple[datetime, str] | None:
    """The (created_at, id) a token resumes after; a run id is a UUID (the column's type)."""
    cursor = decode_cursor(token)
    if cursor is None:
        return None
    created, run_id = cursor
    try:
        return created, str(uuid.UUID(run_id))
    except ValueError:
        raise InvalidArgument(FOREIGN_TOKEN) from None
