"""The statistics every backtest user reads, from an equity curve and closed trades.

Definitions follow backtesting.py's (`backtesting/_stats.py`), so a user moving from
it reads the same numbers, and the parity test checks them against it:

- returns are compounded: the annual return is the geometric mean daily return
  raised to the trading days of a year (252, or 365 when a fair share of bars fall
  on weekends; weekly, monthly and yearly bars use 52, 12 and 1);
- volatility is the annualized deviation of those compounded daily returns, Sharpe
  is annual return over volatility (no risk-free rate), Sortino divides by the
  annualized downside deviation, Calmar by the maximum drawdown;
- drawdown durations run from a peak to the bar that regains it (or the last bar);
- exposure is the share of bars spanned by closed trades, entry to exit inclusive;
- trade returns are net of commissions; the profit factor is the sum of winning
  trade returns over the sum of losing ones, the expectancy their mean.

Ratios that have no value (no trades, no losing trade, a flat equity curve) are
None, never NaN or infinity, so the dict is valid JSON as it is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import polars as pl

from cift.backtest.bars import F64

NS_PER_DAY = 86_400 * 1_000_000_000
Stats = dict[str, float | int | str | None]


def _number(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _geometric_mean(returns: F64) -> float:
    growth = np.nan_to_num(returns, nan=0.0) + 1.0
    if len(growth) == 0:
        return math.nan
    if np.any(growth <= 0):
        return 0.0
    return float(np.exp(np.log(growth).sum() / len(growth)) - 1)


def _bar_period_days(ts_ns: np.ndarray) -> float:
    """Median spacing of the last 100 bars, in days (backtesting.py's `_data_period`)."""
    tail = np.diff(ts_ns[-100:])
    return float(np.median(tail)) / NS_PER_DAY if len(tail) else 0.0


def _annual_periods(timestamp: pl.Series, period_days: float) -> tuple[int, str]:
    whole_days = int(period_days)
    if whole_days == 7:
        return 52, "1w"
    if whole_days == 31:
        return 12, "1mo"
    if whole_days == 365:
        return 1, "1y"
    weekend = (timestamp.dt.weekday() >= 6).to_numpy()  # ISO weekdays: Saturday 6, Sunday 7
    have_weekends = float(weekend.mean()) > 2 / 7 * 0.6
    return (365 if have_weekends else 252), "1d"


def _period_returns(timestamp: pl.Series, equity: F64, every: str) -> F64:
    frame = pl.DataFrame({"timestamp": timestamp, "equity": equity})
    last = (
        frame.group_by_dynamic("timestamp", every=every, closed="left", label="left")
        .agg(pl.col("equity").last())
        .get_column("equity")
        .to_numpy()
    )
    if len(last) < 2:
        return np.empty(0)
    return np.asarray(last[1:] / last[:-1] - 1.0, dtype=np.float64)


def _drawdown_spells(drawdown: F64, ts_ns: np.ndarray) -> tuple[F64, F64]:
    """(duration in days, deepest drawdown) of each spell under water."""
    marks = np.flatnonzero(drawdown == 0)
    last = len(drawdown) - 1
    if not len(marks) or marks[-1] != last:
        marks = np.r_[marks, last]
    under = np.flatnonzero(marks[1:] > marks[:-1] + 1)
    starts, ends = marks[under], marks[under + 1]
    durations = (ts_ns[ends] - ts_ns[starts]) / NS_PER_DAY
    if not len(starts):
        return durations.astype(np.float64), np.empty(0)
    # Each spell's depth is the maximum over [start, end]: reduceat over the pairs
    # (start, end + 1), keeping every other result (the rest span the gaps between).
    bounds = np.empty(2 * len(starts), dtype=np.int64)
    bounds[0::2], bounds[1::2] = starts, ends + 1
    depths = np.maximum.reduceat(np.r_[drawdown, 0.0], bounds)[0::2]
    return durations.astype(np.float64), depths


def _ceil_to_period(days: float, period_days: float) -> float:
    """Durations shown in whole bar periods of a day or more, as backtesting.py rounds them."""
    if period_days >= 1 and math.isfinite(days):
        return float(math.ceil(days - 1e-9))
    return days


def compute_stats(
    *,
    timestamp: pl.Series,
    equity: F64,
    trades: pl.DataFrame,
    close: F64,
    commissions: float,
    first_trading_bar: int = 0,
) -> Stats:
    """Every figure of the result's `stats`; `close` is the (first) symbol's, for buy & hold."""
    ts_ns = timestamp.dt.epoch("ns").to_numpy()
    n = len(equity)
    peak = np.maximum.accumulate(equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        drawdown = np.where(peak > 0, 1.0 - equity / peak, 0.0)
    period_days = _bar_period_days(ts_ns)
    annual_periods, every = _annual_periods(timestamp, period_days)
    day_returns = _period_returns(timestamp, equity, every)
    # Under two periods there is no period return: the annual figures are undefined (None),
    # not 0 %, as backtesting.py's are NaN.
    gmean = _geometric_mean(day_returns)
    annual_return = (1 + gmean) ** annual_periods - 1
    if len(day_returns):
        variance = float(np.var(day_returns, ddof=1)) if len(day_returns) > 1 else math.nan
        volatility = math.sqrt(
            max(
                0.0,
                (variance + (1 + gmean) ** 2) ** annual_periods
                - (1 + gmean) ** (2 * annual_periods),
            )
        )
        downside = math.sqrt(float(np.mean(np.minimum(day_returns, 0.0) ** 2))) * math.sqrt(
            annual_periods
        )
    else:
        volatility = downside = math.nan
    max_dd = float(drawdown.max()) if n else 0.0
    durations, depths = _drawdown_spells(drawdown, ts_ns)
    duration_days = float(ts_ns[-1] - ts_ns[0]) / NS_PER_DAY if n else 0.0
    years = duration_days / 365.25

    exposed = np.zeros(n, dtype=bool)
    for entry, exit_ in zip(
        trades["entry_bar"].to_list(), trades["exit_bar"].to_list(), strict=True
    ):
        exposed[entry : exit_ + 1] = True
    pnl = trades["pnl"].to_numpy()
    returns = trades["return_pct"].to_numpy() / 100
    n_trades = len(pnl)
    wins, losses = returns[returns > 0].sum(), returns[returns < 0].sum()
    trade_days = (
        trades["exit_time"] - trades["entry_time"]
    ).dt.total_nanoseconds().to_numpy() / NS_PER_DAY
    first = min(max(first_trading_bar, 0), len(close) - 1)
    return {
        "start": str(timestamp[0]),
        "end": str(timestamp[-1]),
        "duration_days": duration_days,
        "bars": n,
        "exposure_pct": float(exposed.mean() * 100) if n else 0.0,
        "final_equity": float(equity[-1]),
        "peak_equity": float(equity.max()),
        "commissions": float(commissions),
        "total_return_pct": float((equity[-1] - equity[0]) / equity[0] * 100),
        "buy_hold_return_pct": _number((close[-1] - close[first]) / close[first] * 100),
        "annual_return_pct": _number(annual_return * 100),
        "cagr_pct": _number(((equity[-1] / equity[0]) ** (1 / years) - 1) * 100)
        if years > 0 and equity[-1] > 0
        else None,
        "volatility_pct": _number(volatility * 100),
        "sharpe": _number(annual_return / volatility) if volatility else None,
        "sortino": _number(annual_return / downside) if downside else None,
        "calmar": _number(annual_return / max_dd) if max_dd else None,
        "max_drawdown_pct": -max_dd * 100,
        "avg_drawdown_pct": -float(np.mean(depths)) * 100 if len(depths) else None,
        "max_drawdown_duration_days": _ceil_to_period(float(durations.max()), period_days)
        if len(durations)
        else None,
        "avg_drawdown_duration_days": _ceil_to_period(float(durations.mean()), period_days)
        if len(durations)
        else None,
        "trades": n_trades,
        "win_rate_pct": float((pnl > 0).mean() * 100) if n_trades else None,
        "best_trade_pct": float(returns.max() * 100) if n_trades else None,
        "worst_trade_pct": float(returns.min() * 100) if n_trades else None,
        "avg_trade_pct": _number(_geometric_mean(returns) * 100) if n_trades else None,
        "max_trade_duration_days": _ceil_to_period(float(trade_days.max()), period_days)
        if n_trades
        else None,
        "avg_trade_duration_days": _ceil_to_period(float(trade_days.mean()), period_days)
        if n_trades
        else None,
        "profit_factor": _number(wins / abs(losses)) if losses else None,
        "expectancy_pct": float(returns.mean() * 100) if n_trades else None,
        "sqn": _number(math.sqrt(n_trades) * pnl.mean() / pnl.std(ddof=1))
        if n_trades > 1 and pnl.std(ddof=1) > 0
        else None,
    }


STAT_LABELS: Sequence[tuple[str, str]] = (
    ("start", "Start"),
    ("end", "End"),
    ("duration_days", "Duration [days]"),
    ("bars", "Bars"),
    ("exposure_pct", "Exposure [%]"),
    ("final_equity", "Final equity [$]"),
    ("peak_equity", "Peak equity [$]"),
    ("commissions", "Commissions [$]"),
    ("total_return_pct", "Total return [%]"),
    ("buy_hold_return_pct", "Buy & hold return [%]"),
    ("annual_return_pct", "Annual return [%]"),
    ("cagr_pct", "CAGR [%]"),
    ("volatility_pct", "Volatility (ann.) [%]"),
    ("sharpe", "Sharpe ratio"),
    ("sortino", "Sortino ratio"),
    ("calmar", "Calmar ratio"),
    ("max_drawdown_pct", "Max drawdown [%]"),
    ("avg_drawdown_pct", "Avg drawdown [%]"),
    ("max_drawdown_duration_days", "Max drawdown duration [days]"),
    ("avg_drawdown_duration_days", "Avg drawdown duration [days]"),
    ("trades", "Trades"),
    ("win_rate_pct", "Win rate [%]"),
    ("best_trade_pct", "Best trade [%]"),
    ("worst_trade_pct", "Worst trade [%]"),
    ("avg_trade_pct", "Avg trade [%]"),
    ("max_trade_duration_days", "Max trade duration [days]"),
    ("avg_trade_duration_days", "Avg trade duration [days]"),
    ("profit_factor", "Profit factor"),
    ("expectancy_pct", "Expectancy [%]"),
    ("sqn", "SQN"),
    ("rejected_orders", "Rejected orders"),
)
"""Display names for the CLI table and the HTML report, in reading order."""


def format_stat(key: str, value: float | int | str | None) -> str:
    """A stat as a person reads it: money to the cent, other figures to four digits."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if key.endswith(("equity", "commissions")):
            return f"{value:,.2f}"
        return f"{value:.4g}"
    return str(value)
