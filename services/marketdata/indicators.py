"""GetIndicators' query language: parse "sma:20,ema:12,rsi:14,macd:12:26:9,bbands:20:2,vwap"
into specs and evaluate each over bar or tick columns with the shared kernels.

The kernels themselves live in `cift.indicators` (the backtest engine runs the same
ones); this module only owns the service's request format. No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from cift.indicators import (
    F64,
    bbands,
    book_imbalance,
    ema,
    macd,
    order_flow_imbalance,
    rsi,
    sma,
    vwap,
)
from cift.runtime.errors import InvalidArgument

# --- GetIndicators specs: "sma:20,ema:12,rsi:14,macd:12:26:9,bbands:20:2,vwap" -------------

MAX_SPECS = 16


@dataclass(frozen=True, slots=True)
class IndicatorSpec:
    """One requested indicator and its parameters, as parsed from the query string."""

    kind: str
    params: tuple[float, ...]

    @property
    def label(self) -> str:
        """The name the response uses (e.g. `macd:12:26:9`), canonical for its parameters."""
        rendered = [str(int(p)) if float(p).is_integer() else repr(p) for p in self.params]
        return ":".join([self.kind, *rendered])

    @property
    def needs_quotes(self) -> bool:
        return self.kind in {"ofi", "imbalance"}


# kind -> (defaults, number of integer parameters first, minimum count)
_SPEC_DEFAULTS: Mapping[str, tuple[tuple[float, ...], int]] = {
    "sma": ((20,), 1),
    "ema": ((20,), 1),
    "rsi": ((14,), 1),
    "macd": ((12, 26, 9), 3),
    "bbands": ((20, 2.0), 1),
    "vwap": ((0,), 1),
    "ofi": ((1,), 1),
    "imbalance": ((), 0),
}


def parse_indicator_specs(text: str) -> list[IndicatorSpec]:
    """Parse a comma-separated spec list; missing parameters take the usual defaults.

    Parameters are checked here, so a bad request fails before any data is read.
    """
    parts = [p.strip().lower() for p in text.split(",") if p.strip()]
    if not parts:
        raise InvalidArgument(
            "Name at least one indicator, e.g. indicators=sma:20,ema:12,rsi:14,macd:12:26:9,bbands:20:2,vwap."
        )
    if len(parts) > MAX_SPECS:
        raise InvalidArgument(f"At most {MAX_SPECS} indicators per request, not {len(parts)}.")
    specs: list[IndicatorSpec] = []
    for part in parts:
        kind, *raw = part.split(":")
        if kind not in _SPEC_DEFAULTS:
            valid = ", ".join(_SPEC_DEFAULTS)
            raise InvalidArgument(f"Unknown indicator {kind!r}; use one of {valid}.")
        defaults, integer_count = _SPEC_DEFAULTS[kind]
        if len(raw) > len(defaults):
            raise InvalidArgument(
                f"{kind} takes at most {len(defaults)} parameters, got {len(raw)} in {part!r}."
            )
        params: list[float] = list(defaults)
        for i, token in enumerate(raw):
            try:
                params[i] = int(token) if i < integer_count else float(token)
            except ValueError:
                kind_word = "an integer" if i < integer_count else "a number"
                raise InvalidArgument(
                    f"Parameter {i + 1} of {kind} must be {kind_word}, not {token!r}."
                ) from None
        spec = IndicatorSpec(kind, tuple(params))
        _check_spec(spec)
        if spec not in specs:
            specs.append(spec)
    return specs


def _check_spec(spec: IndicatorSpec) -> None:
    """Run the same parameter validation the compute functions do, on empty input."""
    empty = np.empty(0)
    compute(spec, close=empty, volume=empty, vwap_price=empty)


@dataclass(frozen=True, slots=True)
class QuoteColumns:
    bid: F64
    bid_size: F64
    ask: F64
    ask_size: F64


def compute(
    spec: IndicatorSpec,
    *,
    close: F64,
    volume: F64,
    vwap_price: F64,
    quotes: QuoteColumns | None = None,
) -> dict[str, F64]:
    """Evaluate one spec over bar (or tick) columns; returns named output series.

    `vwap_price` is each row's own average price (a bar's VWAP, or a trade's price),
    so the VWAP indicator weights by what actually traded. OFI and imbalance read
    `quotes`, which must be aligned with the rows.
    """
    p = spec.params
    if spec.kind == "sma":
        return {"sma": sma(close, int(p[0]))}
    if spec.kind == "ema":
        return {"ema": ema(close, int(p[0]))}
    if spec.kind == "rsi":
        return {"rsi": rsi(close, int(p[0]))}
    if spec.kind == "macd":
        line, signal, hist = macd(close, int(p[0]), int(p[1]), int(p[2]))
        return {"macd": line, "signal": signal, "histogram": hist}
    if spec.kind == "bbands":
        upper, middle, lower = bbands(close, int(p[0]), float(p[1]))
        return {"upper": upper, "middle": middle, "lower": lower}
    if spec.kind == "vwap":
        return {"vwap": vwap(vwap_price, volume, int(p[0]))}
    q = quotes if quotes is not None else QuoteColumns(close[:0], close[:0], close[:0], close[:0])
    if spec.kind == "ofi":
        return {"ofi": order_flow_imbalance(q.bid, q.bid_size, q.ask, q.ask_size, int(p[0]))}
    return {"imbalance": book_imbalance(q.bid_size, q.ask_size)}
