"""`run_backtest`: the one call a notebook, the CLI and the backtest service make.

It checks everything first (bars, strategy, parameters, cash, commission, engine)
and raises InvalidArgument before any work, so a caller that stores runs never
keeps a half-made one. A long run reports progress through `progress(fraction)`;
the callback may raise (the service raises BacktestCanceled) to stop the run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import numpy as np
import polars as pl

from cift.backtest.bars import split_bars
from cift.backtest.event import Strategy, run_event
from cift.backtest.result import BacktestResult, SymbolCurve, assemble
from cift.backtest.signals import SignalStrategy, builtin, user_signal
from cift.backtest.vector import simulate
from cift.runtime.errors import DomainError, InvalidArgument
from cift.trading.pretrade.limits import RiskLimits, validate

ENGINES = ("vector", "event")
MAX_COMMISSION = 0.1
MAX_MARGIN = 4.0
Progress = Callable[[float], None]


class BacktestCanceled(DomainError):
    """Raised (by a progress callback) to stop a run; nothing of it is kept."""

    code_name = "CANCELLED"


def resolve_strategy(strategy: object) -> SignalStrategy | Any:
    """A built-in by name, a SignalStrategy, a signal function, or an event strategy class."""
    if isinstance(strategy, str):
        return builtin(strategy)
    if isinstance(strategy, SignalStrategy):
        return strategy
    if isinstance(strategy, type) and issubclass(strategy, Strategy):
        return strategy
    if isinstance(strategy, Strategy):
        return type(strategy)
    if callable(strategy):
        return user_signal(strategy)
    raise InvalidArgument(
        "A strategy is a built-in name, a signal function or a Strategy subclass, "
        f"not {type(strategy).__name__}."
    )


def check_account(cash: float, commission: float) -> tuple[float, float]:
    try:
        cash, commission = float(cash), float(commission)
    except (TypeError, ValueError):
        raise InvalidArgument("cash and commission must be numbers.") from None
    if not (math.isfinite(cash) and cash > 0):
        raise InvalidArgument(f"cash must be a positive amount, not {cash:g}.")
    if not (math.isfinite(commission) and 0 <= commission <= MAX_COMMISSION):
        raise InvalidArgument(
            f"commission is a fraction of each fill's notional between 0 and {MAX_COMMISSION:g} "
            f"(0.002 = 0.2%), not {commission:g}."
        )
    return cash, commission


def check_margin(margin_multiplier: float) -> Decimal:
    """Buying power's multiplier: 1 (cash account) up to 4 (a day trader's margin)."""
    try:
        value = float(margin_multiplier)
    except (TypeError, ValueError):
        raise InvalidArgument("margin_multiplier must be a number.") from None
    if not (math.isfinite(value) and 1 <= value <= MAX_MARGIN):
        raise InvalidArgument(
            f"margin_multiplier is between 1 (a cash account) and {MAX_MARGIN:g}, not {value:g}."
        )
    return Decimal(repr(value))


def run_backtest(
    bars: pl.DataFrame,
    strategy: object,
    params: Mapping[str, object] | None = None,
    cash: float = 10_000,
    commission: float = 0.0,
    engine: str = "vector",
    *,
    symbol: str | None = None,
    progress: Progress | None = None,
    limits: RiskLimits | None = None,
    margin_multiplier: float = 1.0,
) -> BacktestResult:
    """Backtest `strategy` on `bars` and return its stats, trades and equity curve.

    `bars`: a Polars frame with timestamp, open, high, low, close, volume (and
    optionally symbol; `symbol` picks one). `strategy`: a built-in name
    (`sma_cross`, `rsi_reversion`, `bbands_breakout`, `macd_cross`), a signal
    function `f(bars, **params) -> targets`, or a `Strategy` subclass (event engine
    only). `commission` is a fraction of notional per fill (0.002 = 0.2%).

    Event engine only: `limits` are the risk service's limits every order is checked
    against (default: a new live account's, `RiskLimits()`), `margin_multiplier` the
    account's buying-power multiplier (1: a cash account). Refused orders are in
    `result.rejections` and counted in `stats["rejected_orders"]`.
    """
    if engine not in ENGINES:
        raise InvalidArgument(f"Unknown engine {engine!r}; use one of {', '.join(ENGINES)}.")
    cash, commission = check_account(cash, commission)
    multiplier = check_margin(margin_multiplier)
    if engine == "vector" and (limits is not None or multiplier != 1):
        raise InvalidArgument(
            "Risk limits and margin apply to the event engine's orders; pass engine='event'."
        )
    if limits is not None:
        validate(limits)
    chosen = resolve_strategy(strategy)
    if not isinstance(chosen, SignalStrategy) and engine == "vector":
        raise InvalidArgument(
            "An on_bar Strategy runs on the event engine only; pass engine='event', or give "
            "the vector engine a signal function."
        )
    per_symbol = split_bars(bars, symbol)
    if not isinstance(chosen, SignalStrategy):
        return run_event(
            per_symbol, chosen, dict(params or {}), cash, commission, progress,
            limits=limits, margin_multiplier=multiplier,
        )  # fmt: skip
    resolved = chosen.resolve(params)
    chosen.require_bars(resolved, per_symbol)
    if engine == "event":
        return run_event(
            per_symbol, chosen, resolved, cash, commission, progress,
            limits=limits, margin_multiplier=multiplier,
        )  # fmt: skip
    return _run_vector(per_symbol, chosen, resolved, cash, commission, progress)


def _run_vector(
    per_symbol: list[Any],
    strategy: SignalStrategy,
    params: dict[str, float],
    cash: float,
    commission: float,
    progress: Progress | None,
) -> BacktestResult:
    sleeve = cash / len(per_symbol)
    curves, trades, commissions = [], [], 0.0
    for done, bars in enumerate(per_symbol, start=1):
        run = simulate(bars, strategy.targets(bars, params), sleeve, commission)
        curves.append(SymbolCurve(bars, run.equity, run.position))
        trades.append(run.trades)
        commissions += run.commissions
        if progress is not None:
            progress(done / len(per_symbol))
    return assemble(
        strategy=strategy.name,
        params=params,
        engine="vector",
        curves=curves,
        trades=pl.concat(trades),
        commissions=commissions,
        first_trading_bar=int(np.clip(strategy.warmup(params), 0, None)),
    )
