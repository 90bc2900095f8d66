"""Signal strategies: from bars and parameters to a target position on every bar.

A signal strategy says, at each bar's close, where the position should be: +1 all
in long, -1 all in short, 0 flat, NaN keep what is held. Both engines run it the
same way (the order goes to the next bar's open), so a built-in compares across
engines and against other libraries bar for bar.

The built-ins use the indicator kernels that market data serves (`cift.indicators`),
so a backtest sees the values a live chart shows. Parameters are checked here, with
a message that names the strategy and what it accepts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from cift import indicators
from cift.backtest.bars import F64, SymbolBars
from cift.runtime.errors import InvalidArgument

Params = dict[str, float]
SignalFunction = Callable[..., F64]


@dataclass(frozen=True, slots=True)
class Param:
    """One tunable parameter: its default and the values it may take."""

    name: str
    default: float
    integer: bool
    minimum: float
    maximum: float
    description: str

    def coerce(self, strategy: str, value: object) -> float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise InvalidArgument(
                    f"Parameter {self.name} of {strategy} must be a number, not {value!r}."
                ) from None
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            raise InvalidArgument(
                f"Parameter {self.name} of {strategy} must be a number, not {value!r}."
            )
        number = float(value)
        if not math.isfinite(number):
            raise InvalidArgument(f"Parameter {self.name} of {strategy} must be finite.")
        if self.integer and not number.is_integer():
            raise InvalidArgument(
                f"Parameter {self.name} of {strategy} must be a whole number, not {value!r}."
            )
        if not self.minimum <= number <= self.maximum:
            raise InvalidArgument(
                f"Parameter {self.name} of {strategy} must be between {self.minimum:g} and "
                f"{self.maximum:g}, not {number:g}."
            )
        return int(number) if self.integer else number


@dataclass(frozen=True, slots=True)
class SignalStrategy:
    """A named signal function with its parameters, their checks and its warm-up."""

    name: str
    description: str
    params: tuple[Param, ...]
    signal: Callable[[SymbolBars, Params], F64]
    check: Callable[[Params], None] = field(default=lambda params: None)
    warmup: Callable[[Params], int] = field(default=lambda params: 0)
    # A user's function owns its parameters' meaning: they pass through as given.
    open_params: bool = False

    def resolve(self, given: Mapping[str, object] | None) -> Params:
        """The full parameter set: defaults overlaid with `given`, each one checked."""
        if self.open_params:
            return {name: value for name, value in (given or {}).items()}  # type: ignore[misc]
        known = {p.name: p for p in self.params}
        unknown = sorted(set(given or {}) - set(known))
        if unknown:
            accepted = ", ".join(known) or "no parameters"
            raise InvalidArgument(
                f"Unknown parameter {', '.join(unknown)} for {self.name}; it takes {accepted}."
            )
        resolved = {p.name: int(p.default) if p.integer else p.default for p in self.params}
        for name, value in (given or {}).items():
            resolved[name] = known[name].coerce(self.name, value)
        self.check(resolved)
        return resolved

    def targets(self, bars: SymbolBars, params: Params) -> F64:
        return self.signal(bars, params)

    def require_bars(self, params: Params, per_symbol: Sequence[SymbolBars]) -> None:
        """InvalidArgument when even the longest symbol's bars end before a first trade.

        backtesting.py runs such bars and reports no trades; a run that cannot trade
        at all is a mistake (a range or timeframe too short for the periods), and the
        person is told what to change instead.
        """
        signal_bar = self.warmup(params) + 1  # 1-based: the first bar with a signal
        bars = max(len(symbol) for symbol in per_symbol)
        if bars <= signal_bar:
            settings = ", ".join(f"{name}={value}" for name, value in params.items())
            raise InvalidArgument(
                f"{self.name} ({settings}) can trade at bar {signal_bar + 1} at the earliest "
                f"(its first signal needs {signal_bar} bars, then the next bar's open); "
                f"these bars hold {bars}: give it more bars, over a longer range or a "
                "shorter timeframe."
            )


def user_signal(function: SignalFunction) -> SignalStrategy:
    """Wrap a user's `function(bars, **params) -> targets` as a strategy; params unchecked."""
    name = getattr(function, "__name__", "signal")

    def signal(bars: SymbolBars, params: Params) -> F64:
        targets = np.asarray(function(bars, **params), dtype=np.float64)
        if targets.shape != (len(bars),):
            raise InvalidArgument(
                f"Signal function {name} returned shape {targets.shape} for {len(bars)} bars; "
                "it must return one target per bar."
            )
        return np.ascontiguousarray(targets)

    return SignalStrategy(name, function.__doc__ or "", (), signal, open_params=True)


@njit(cache=True)
def _cross_targets(a: F64, b: F64, above: float, below: float, out: F64) -> F64:
    """`above` where a crosses over b (strictly), `below` where it crosses under, else NaN."""
    out[0] = np.nan
    for i in range(1, a.shape[0]):
        if a[i - 1] < b[i - 1] and a[i] > b[i]:
            out[i] = above
        elif a[i - 1] > b[i - 1] and a[i] < b[i]:
            out[i] = below
        else:
            out[i] = np.nan
    return out


@njit(cache=True)
def _band_targets(x: F64, enter_below: F64, exit_above: F64, enter: float, out: F64) -> F64:
    """`enter` where x drops below enter_below, 0 where x rises above exit_above, else NaN."""
    for i in range(x.shape[0]):
        if x[i] < enter_below[i]:
            out[i] = enter
        elif x[i] > exit_above[i]:
            out[i] = 0.0
        else:
            out[i] = np.nan
    return out


def _reversal_value(params: Params) -> float:
    return -1.0 if params.get("short", 1.0) else 0.0


def _sma_cross(bars: SymbolBars, params: Params) -> F64:
    fast = indicators.sma(bars.close, int(params["fast"]))
    slow = indicators.sma(bars.close, int(params["slow"]))
    return _cross_targets(fast, slow, 1.0, _reversal_value(params), np.empty(len(bars)))


def _check_fast_slow(params: Params) -> None:
    if params["fast"] >= params["slow"]:
        raise InvalidArgument(
            f"fast ({params['fast']:g}) must be shorter than slow ({params['slow']:g})."
        )


def _rsi_reversion(bars: SymbolBars, params: Params) -> F64:
    rsi = indicators.rsi(bars.close, int(params["period"]))
    n = len(bars)
    lower = np.full(n, params["lower"])
    upper = np.full(n, params["upper"])
    return _band_targets(rsi, lower, upper, 1.0, np.empty(n))


def _check_bands(params: Params) -> None:
    if params["lower"] >= params["upper"]:
        raise InvalidArgument(
            f"lower ({params['lower']:g}) must be below upper ({params['upper']:g})."
        )


def _bbands_breakout(bars: SymbolBars, params: Params) -> F64:
    upper, middle, _ = indicators.bbands(bars.close, int(params["period"]), params["deviations"])
    # Enter when the close breaks above the upper band (x = -close below -upper), leave
    # when it falls back under the middle band.
    return _band_targets(-bars.close, -upper, -middle, 1.0, np.empty(len(bars)))


def _macd_cross(bars: SymbolBars, params: Params) -> F64:
    line, signal, _ = indicators.macd(
        bars.close, int(params["fast"]), int(params["slow"]), int(params["signal"])
    )
    return _cross_targets(line, signal, 1.0, _reversal_value(params), np.empty(len(bars)))


def _short_param() -> Param:
    return Param(
        "short", 1, True, 0, 1, "1: reverse into a short on the opposite cross; 0: go flat"
    )


BUILTINS: dict[str, SignalStrategy] = {
    s.name: s
    for s in (
        SignalStrategy(
            "sma_cross",
            "Long when the fast SMA crosses above the slow one, short (or flat) when it "
            "crosses below.",
            (
                Param("fast", 10, True, 1, indicators.MAX_PERIOD, "fast SMA period (bars)"),
                Param("slow", 30, True, 2, indicators.MAX_PERIOD, "slow SMA period (bars)"),
                _short_param(),
            ),
            _sma_cross,
            _check_fast_slow,
            lambda p: int(p["slow"]) - 1,
        ),
        SignalStrategy(
            "rsi_reversion",
            "Long when RSI falls below `lower` (oversold), flat when it rises above `upper`.",
            (
                Param("period", 14, True, 2, indicators.MAX_PERIOD, "RSI period (bars)"),
                Param("lower", 30, False, 0, 100, "RSI level that opens a long"),
                Param("upper", 70, False, 0, 100, "RSI level that closes it"),
            ),
            _rsi_reversion,
            _check_bands,
            lambda p: int(p["period"]),
        ),
        SignalStrategy(
            "bbands_breakout",
            "Long when the close breaks above the upper Bollinger band, flat when it falls "
            "back below the middle band.",
            (
                Param("period", 20, True, 2, indicators.MAX_PERIOD, "band period (bars)"),
                Param(
                    "deviations",
                    2.0,
                    False,
                    0.01,
                    indicators.MAX_DEVIATIONS,
                    "band width in standard deviations",
                ),
            ),
            _bbands_breakout,
            warmup=lambda p: int(p["period"]) - 1,
        ),
        SignalStrategy(
            "macd_cross",
            "Long when the MACD line crosses above its signal line, short (or flat) when it "
            "crosses below.",
            (
                Param("fast", 12, True, 2, indicators.MAX_PERIOD, "fast EMA period (bars)"),
                Param("slow", 26, True, 2, indicators.MAX_PERIOD, "slow EMA period (bars)"),
                Param("signal", 9, True, 1, indicators.MAX_PERIOD, "signal EMA period (bars)"),
                _short_param(),
            ),
            _macd_cross,
            _check_fast_slow,
            lambda p: int(p["slow"]) + int(p["signal"]) - 2,
        ),
    )
}


def builtin(name: str) -> SignalStrategy:
    strategy = BUILTINS.get(name)
    if strategy is None:
        raise InvalidArgument(
            f"Unknown strategy {name!r}; the built-ins are {', '.join(sorted(BUILTINS))}."
        )
    return strategy
