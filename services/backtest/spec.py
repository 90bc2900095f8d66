"""What a backtest request must satisfy before anything is stored.

Pure checks with sentences a person can act on (`InvalidArgument`): symbols,
timeframe, range, engine, that cash, commission and the margin multiplier are
decimals, and that risk limits are ones a control can work with (the risk
service's own `validate`) and only come with the event engine. The strategy,
its parameters and the account's figures (cash, commission, margin range) are
checked by the engine (the library owns their rules), the bars where they are
loaded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal

from cift.runtime.errors import InvalidArgument
from cift.runtime.money import optional_decimal
from cift.trading.pretrade.limits import LimitOverrides, validate
from services.backtest.model import RunSpec

TIMEFRAMES = ("1Sec", "1Min", "5Min", "15Min", "1Hour", "1Day")
DEFAULT_TIMEFRAME = "1Day"
ENGINES = ("vector", "event")
DEFAULT_ENGINE = "vector"
DEFAULT_CASH = Decimal("10000")
MAX_SYMBOLS = 20
_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9./-]{0,31}$")


def parse_symbols(symbol: str, symbols: Iterable[str]) -> tuple[str, ...]:
    """`symbol` and every comma-separated element of `symbols`, upper case, each once."""
    found: list[str] = []
    for element in (symbol, *symbols):
        for part in element.split(","):
            name = part.strip().upper()
            if name and name not in found:
                found.append(name)
    if not found:
        raise InvalidArgument("Name the symbol to backtest (symbol or symbols).")
    if len(found) > MAX_SYMBOLS:
        raise InvalidArgument(f"A backtest trades at most {MAX_SYMBOLS} symbols, not {len(found)}.")
    for name in found:
        if not _SYMBOL.match(name):
            raise InvalidArgument(f"{name!r} is not a symbol.")
    return tuple(found)


def _decimal(field: str, text: str, default: Decimal) -> Decimal:
    value = optional_decimal(field, text)
    return default if value is None else value


LimitValue = Decimal | int | bool


def check_limits(overrides: LimitOverrides) -> dict[str, LimitValue]:
    """The limits a request pins, by name, checked as the risk service checks them."""
    validate(overrides)
    return overrides.pinned()


def build_spec(
    *,
    strategy: str,
    params: Mapping[str, object],
    symbol: str,
    symbols: Iterable[str],
    timeframe: str,
    start: datetime | None,
    end: datetime | None,
    cash: str,
    commission: str,
    engine: str,
    now: datetime,
    margin_multiplier: str = "",
    limits: Mapping[str, LimitValue] | None = None,
) -> RunSpec:
    """A complete, checked `RunSpec`, or InvalidArgument naming the first problem.

    The strategy and its parameters are the engine's to check (`Engine.resolve`)."""
    chosen_timeframe = timeframe or DEFAULT_TIMEFRAME
    if chosen_timeframe not in TIMEFRAMES:
        raise InvalidArgument(
            f"timeframe must be one of {', '.join(TIMEFRAMES)}, not {timeframe!r}."
        )
    if start is None:
        raise InvalidArgument("start is required: the first bar's time (RFC 3339).")
    range_end = end or now
    if start >= range_end:
        raise InvalidArgument("The range is empty: start must be before end (end is exclusive).")
    starting_cash = _decimal("cash", cash, DEFAULT_CASH)
    commission_rate = _decimal("commission", commission, Decimal(0))
    chosen_engine = engine.strip().lower() or DEFAULT_ENGINE
    if chosen_engine not in ENGINES:
        raise InvalidArgument(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}.")
    margin = _decimal("margin_multiplier", margin_multiplier, Decimal(1))
    if chosen_engine == "vector" and (limits is not None or margin != 1):
        raise InvalidArgument(
            "Risk limits and margin_multiplier apply to the event engine's orders; "
            'set engine to "event".'
        )
    return RunSpec(
        strategy=strategy,
        params=dict(params),
        symbols=parse_symbols(symbol, symbols),
        timeframe=chosen_timeframe,
        start=start,
        end=range_end,
        cash=starting_cash,
        commission=commission_rate,
        engine=chosen_engine,
        margin_multiplier=margin,
        limits=None if limits is None else dict(limits),
    )
