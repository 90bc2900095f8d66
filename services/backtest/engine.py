"""The `cift.backtest` library behind the service: its strategies, checks and runs.

The only module of the service that imports the library. It turns the library's
answers into the service's values: float amounts become decimals (money to the
cent, prices and sizes as the shortest decimal that reads back as the same
float), its naive UTC timestamps become aware ones, and the equity curve is
thinned to what a client can chart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import polars as pl

from cift.backtest import BUILTINS, BacktestCanceled, builtin, run_backtest, split_bars
from cift.backtest.api import check_account, check_margin
from cift.runtime.money import decimal_of_double
from cift.trading.money import cents_of_float
from cift.trading.pretrade.limits import RiskLimits
from services.backtest.model import (
    EquityPoint,
    Outcome,
    Rejection,
    RunSpec,
    StrategyInfo,
    StrategyParam,
    TradeRecord,
)
from services.backtest.runs import RunCanceled


def _amount(value: float) -> Decimal:
    """A float amount of money to the cent."""
    return cents_of_float(value)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def thinned(count: int, max_points: int) -> np.ndarray:
    """Row numbers of at most `max_points` evenly spread rows, first and last included."""
    if count <= max_points:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, max_points).round().astype(np.int64))


def trade_records(trades: pl.DataFrame) -> tuple[TradeRecord, ...]:
    return tuple(
        TradeRecord(
            symbol=row["symbol"],
            side="long" if row["size"] > 0 else "short",
            qty=decimal_of_double(abs(row["size"])),
            entry_time=_utc(row["entry_time"]),
            exit_time=_utc(row["exit_time"]),
            entry_price=decimal_of_double(row["entry_price"]),
            exit_price=decimal_of_double(row["exit_price"]),
            pnl=_amount(row["pnl"]),
            return_pct=float(row["return_pct"]),
            commission=_amount(row["commission"]),
        )
        for row in trades.iter_rows(named=True)
    )


def rejection_records(rejections: pl.DataFrame | None) -> tuple[Rejection, ...]:
    if rejections is None:
        return ()
    return tuple(
        Rejection(
            time=_utc(row["time"]),
            symbol=row["symbol"],
            side=row["side"],
            qty=decimal_of_double(row["qty"]),
            type=row["order_type"],
            reason=row["reason"],
            message=row["message"],
        )
        for row in rejections.iter_rows(named=True)
    )


def equity_points(equity: pl.DataFrame, max_points: int) -> tuple[EquityPoint, ...]:
    kept = equity[thinned(equity.height, max_points)]
    return tuple(
        EquityPoint(
            timestamp=_utc(row["timestamp"]),
            equity=_amount(row["equity"]),
            drawdown_pct=float(row["drawdown_pct"]),
        )
        for row in kept.select("timestamp", "equity", "drawdown_pct").iter_rows(named=True)
    )


class LibraryEngine:
    """`services.backtest.runs.Engine` on the cift.backtest library."""

    def __init__(self, max_equity_points: int) -> None:
        self.max_equity_points = max_equity_points
        self._catalog = tuple(
            StrategyInfo(
                name=strategy.name,
                description=strategy.description,
                params=tuple(
                    StrategyParam(
                        name=param.name,
                        description=param.description,
                        type="int" if param.integer else "float",
                        default=param.default,
                        min=param.minimum,
                        max=param.maximum,
                    )
                    for param in strategy.params
                ),
            )
            for strategy in sorted(BUILTINS.values(), key=lambda s: s.name)
        )

    def catalog(self) -> Sequence[StrategyInfo]:
        return self._catalog

    def resolve(self, spec: RunSpec) -> RunSpec:
        params = builtin(spec.strategy).resolve(dict(spec.params))
        check_account(float(spec.cash), float(spec.commission))
        check_margin(float(spec.margin_multiplier))
        return dataclasses.replace(spec, params=params)

    def check_bars(self, bars: pl.DataFrame, spec: RunSpec) -> None:
        strategy = builtin(spec.strategy)
        strategy.require_bars(strategy.resolve(spec.params), split_bars(bars))

    def run(
        self, bars: pl.DataFrame, spec: RunSpec, on_progress: Callable[[float], None]
    ) -> Outcome:
        try:
            result = run_backtest(
                bars,
                spec.strategy,
                dict(spec.params),
                cash=float(spec.cash),
                commission=float(spec.commission),
                engine=spec.engine,
                progress=on_progress,
                limits=None
                if spec.limits is None
                else dataclasses.replace(RiskLimits(), **spec.limits),  # type: ignore[arg-type]
                margin_multiplier=float(spec.margin_multiplier),
            )
        except BacktestCanceled:
            raise RunCanceled from None
        return Outcome(
            stats=dict(result.stats),
            trades=trade_records(result.trades),
            equity=equity_points(result.equity, self.max_equity_points),
            rejections=rejection_records(result.rejections),
        )
