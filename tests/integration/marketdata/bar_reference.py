"""Bars computed the simplest possible way, independently of services.marketdata.bars."""

from __future__ import annotations

from collections.abc import Iterable

SECONDS = {"1Sec": 1, "1Min": 60, "5Min": 300, "15Min": 900, "1Hour": 3600, "1Day": 86400}


def reference_bars(
    trades: Iterable[tuple[str, int, float, float]], timeframes: Iterable[str] = tuple(SECONDS)
) -> dict[tuple[str, str, int], tuple[float, float, float, float, float, float, int]]:
    """(symbol, timeframe, start_ns) -> (open, high, low, close, volume, notional, count).

    `trades` are (symbol, ts_ns, price, size) in time order per symbol.
    """
    bars: dict[tuple[str, str, int], list[float]] = {}
    for symbol, ts_ns, price, size in trades:
        for timeframe in timeframes:
            width = SECONDS[timeframe] * 1_000_000_000
            key = (symbol, timeframe, ts_ns // width * width)
            bar = bars.get(key)
            if bar is None:
                bars[key] = [price, price, price, price, size, price * size, 1]
            else:
                bar[1] = max(bar[1], price)
                bar[2] = min(bar[2], price)
                bar[3] = price
                bar[4] += size
                bar[5] += price * size
                bar[6] += 1
    return {k: (v[0], v[1], v[2], v[3], v[4], v[5], int(v[6])) for k, v in bars.items()}
