"""Technical indicators over bar or tick columns, compiled with Numba.

Shared by market data (GetIndicators, the live indicator streams) and the backtest
engine, so a strategy on history sees exactly the values a live chart shows.

Every indicator follows TA-Lib's definitions (classic compatibility, unstable period
0), so results agree with TA-Lib to rounding: the same seeds (an SMA of the first
window for EMA, MACD and RSI), the same warm-up length (NaN before it), and the same
handling of leading NaNs (skipped: the warm-up starts at the first valid value).
A NaN after the first valid value makes every later output NaN: a recursive
indicator cannot know its state once an input is unknown. Empty input gives empty
output; input shorter than the warm-up gives all NaN.

Speed notes (measured, see bench/REPORT-marketdata.md): each kernel is one pass,
multiplies by a precomputed 1/n instead of dividing, and MACD runs its two price
EMAs and the signal EMA in a single fused loop.

Parameters are validated here; absurd values raise InvalidArgument. No I/O.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

from cift.runtime.errors import InvalidArgument

F64 = npt.NDArray[np.float64]
MAX_PERIOD = 100_000
MAX_DEVIATIONS = 100.0
# TA-Lib treats a variance below this as zero (rounding noise of E[x^2] - E[x]^2).
_VARIANCE_FLOOR = 1e-14
_ZERO = 1e-14
# Only fused multiply-add is allowed: it shortens the recursive dependency chain of the
# EMAs (measured 1.4x faster) while NaN and infinity keep their IEEE meaning.
_CONTRACT = {"contract"}


def _series(name: str, values: object) -> F64:
    array = np.ascontiguousarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise InvalidArgument(f"{name} must be a one-dimensional series, not shape {array.shape}.")
    return array


def _period(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InvalidArgument(f"{name} must be an integer, not {value!r}.")
    if not minimum <= value <= MAX_PERIOD:
        raise InvalidArgument(f"{name} must be between {minimum} and {MAX_PERIOD}, not {value}.")
    return int(value)


def _out(like: F64) -> F64:
    # Outputs are allocated by NumPy, not inside the kernels: NumPy asks the kernel
    # for transparent huge pages on large arrays, which cuts page faults on 1M-point
    # outputs (Numba's allocator does not).
    return np.empty(like.shape[0])


def _same_length(**series: F64) -> None:
    lengths = {len(v) for v in series.values()}
    if len(lengths) > 1:
        names = ", ".join(series)
        raise InvalidArgument(f"{names} must have the same length.")


@njit(cache=True)
def _first_valid(x: F64) -> int:
    for i in range(x.shape[0]):
        if not math.isnan(x[i]):
            return i
    return len(x)


@njit(cache=True)
def _first_valid_all(a: F64, b: F64, c: F64, d: F64) -> int:
    for i in range(a.shape[0]):
        if not (math.isnan(a[i]) or math.isnan(b[i]) or math.isnan(c[i]) or math.isnan(d[i])):
            return i
    return len(a)


@njit(cache=True)
def _sma_kernel(x: F64, n: int, out: F64) -> F64:
    size = x.shape[0]
    begin = _first_valid(x)
    start = begin + n - 1
    if start >= size:
        out[:] = np.nan
        return out
    out[:start] = np.nan
    inv = 1.0 / n
    total = 0.0
    for i in range(begin, start + 1):
        total += x[i]
    out[start] = total * inv
    for i in range(start + 1, size):
        # One add on the dependency chain per point; the difference is computed aside.
        total += x[i] - x[i - n]
        out[i] = total * inv
    return out


@njit(cache=True, fastmath=_CONTRACT)
def _ema_kernel(x: F64, n: int, out: F64) -> F64:
    size = x.shape[0]
    begin = _first_valid(x)
    start = begin + n - 1
    if start >= size:
        out[:] = np.nan
        return out
    out[:start] = np.nan
    k = 2.0 / (n + 1)
    keep = 1.0 - k
    total = 0.0
    for i in range(begin, start + 1):
        total += x[i]
    ema = total * (1.0 / n)
    out[start] = ema
    for i in range(start + 1, size):
        ema = x[i] * k + ema * keep
        out[i] = ema
    return out


@njit(cache=True, fastmath=_CONTRACT)
def _rsi_kernel(x: F64, n: int, out: F64) -> F64:
    size = x.shape[0]
    begin = _first_valid(x)
    start = begin + n
    if start >= size:
        out[:] = np.nan
        return out
    out[:start] = np.nan
    inv = 1.0 / n
    keep = (n - 1.0) * inv
    gain = 0.0
    loss = 0.0
    for i in range(begin + 1, start + 1):
        change = x[i] - x[i - 1]
        if change < 0.0:
            loss -= change
        else:
            gain += change
    gain *= inv
    loss *= inv
    total = gain + loss
    out[start] = 100.0 * (gain / total) if not -_ZERO < total < _ZERO else 0.0
    for i in range(start + 1, size):
        change = x[i] - x[i - 1]
        # Wilder smoothing, branch-free: g = (g * (n - 1) + up) / n.
        gain = gain * keep + max(change, 0.0) * inv
        loss = loss * keep + max(-change, 0.0) * inv
        total = gain + loss
        out[i] = 100.0 * (gain / total) if not -_ZERO < total < _ZERO else 0.0
    return out


@njit(cache=True, fastmath=_CONTRACT)
def _macd_kernel(x: F64, fast: int, slow: int, signal: int, macd: F64, sig: F64, hist: F64) -> None:
    size = x.shape[0]
    begin = _first_valid(x)
    first = begin + slow - 1
    out_start = first + signal - 1
    if out_start >= size:
        macd[:] = np.nan
        sig[:] = np.nan
        hist[:] = np.nan
        return
    macd[:out_start] = np.nan
    sig[:out_start] = np.nan
    hist[:out_start] = np.nan
    k_fast = 2.0 / (fast + 1)
    k_slow = 2.0 / (slow + 1)
    k_sig = 2.0 / (signal + 1)
    # The MACD line is a small difference of two large EMAs, so this kernel keeps
    # TA-Lib's exact operation order, (x - ema) * k + ema, which TA-Lib's build fuses
    # into one multiply-add: the line then agrees bit for bit, even near zero.
    # Both price EMAs are seeded with SMAs ending at the same bar (TA-Lib aligns them
    # on the slow EMA's first value), so the fast seed starts slow - fast bars later.
    slow_sum = 0.0
    fast_sum = 0.0
    for i in range(begin, first + 1):
        slow_sum += x[i]
        if i > first - fast:
            fast_sum += x[i]
    ema_fast = fast_sum / fast
    ema_slow = slow_sum / slow
    line = ema_fast - ema_slow
    # Warm-up: the signal EMA is seeded with the mean of its first `signal` lines.
    sig_sum = line
    for i in range(first + 1, out_start + 1):
        value = x[i]
        ema_fast = (value - ema_fast) * k_fast + ema_fast
        ema_slow = (value - ema_slow) * k_slow + ema_slow
        line = ema_fast - ema_slow
        sig_sum += line
    sig_value = sig_sum / signal if out_start > first else line
    macd[out_start] = line
    sig[out_start] = sig_value
    hist[out_start] = line - sig_value
    # The steady state, with no branch in the loop: one pass writes all three outputs.
    # Each EMA step waits for the one before (subtract, then multiply-add), so the loop
    # runs at that latency; two points per iteration let the signal step of the first
    # overlap the price steps of the second (measured 5 % faster, same results).
    i = out_start + 1
    while i + 1 < size:
        first_value = x[i]
        second_value = x[i + 1]
        ema_fast = (first_value - ema_fast) * k_fast + ema_fast
        ema_slow = (first_value - ema_slow) * k_slow + ema_slow
        first_line = ema_fast - ema_slow
        ema_fast = (second_value - ema_fast) * k_fast + ema_fast
        ema_slow = (second_value - ema_slow) * k_slow + ema_slow
        second_line = ema_fast - ema_slow
        sig_value = (first_line - sig_value) * k_sig + sig_value
        macd[i] = first_line
        sig[i] = sig_value
        hist[i] = first_line - sig_value
        sig_value = (second_line - sig_value) * k_sig + sig_value
        macd[i + 1] = second_line
        sig[i + 1] = sig_value
        hist[i + 1] = second_line - sig_value
        i += 2
    if i < size:
        value = x[i]
        ema_fast = (value - ema_fast) * k_fast + ema_fast
        ema_slow = (value - ema_slow) * k_slow + ema_slow
        line = ema_fast - ema_slow
        sig_value = (line - sig_value) * k_sig + sig_value
        macd[i] = line
        sig[i] = sig_value
        hist[i] = line - sig_value


@njit(cache=True)
def _bbands_kernel(
    x: F64, n: int, dev_up: float, dev_down: float, upper: F64, middle: F64, lower: F64
) -> None:
    size = x.shape[0]
    begin = _first_valid(x)
    start = begin + n - 1
    if start >= size:
        upper[:] = np.nan
        middle[:] = np.nan
        lower[:] = np.nan
        return
    upper[:start] = np.nan
    middle[:start] = np.nan
    lower[:start] = np.nan
    inv = 1.0 / n
    total = 0.0
    total_sq = 0.0
    for i in range(begin, start):
        value = x[i]
        total += value
        total_sq += value * value
    for i in range(start, size):
        value = x[i]
        total += value
        total_sq += value * value
        mean = total * inv
        variance = total_sq * inv - mean * mean
        deviation = math.sqrt(variance) if variance >= _VARIANCE_FLOOR else 0.0
        middle[i] = mean
        upper[i] = mean + dev_up * deviation
        lower[i] = mean - dev_down * deviation
        old = x[i - n + 1]
        total -= old
        total_sq -= old * old


@njit(cache=True)
def _vwap_kernel(price: F64, volume: F64, n: int, out: F64) -> F64:
    size = price.shape[0]
    notional = 0.0
    shares = 0.0
    for i in range(size):
        notional += price[i] * volume[i]
        shares += volume[i]
        if n > 0 and i >= n:
            notional -= price[i - n] * volume[i - n]
            shares -= volume[i - n]
        if n > 0 and i < n - 1:
            out[i] = np.nan
        else:
            out[i] = notional / shares if shares > 0.0 else np.nan
    return out


@njit(cache=True)
def _ofi_kernel(bid: F64, bid_size: F64, ask: F64, ask_size: F64, window: int, out: F64) -> F64:
    size = bid.shape[0]
    begin = _first_valid_all(bid, bid_size, ask, ask_size)
    start = begin + window
    if start >= size:
        out[:] = np.nan
        return out
    out[:start] = np.nan
    events = np.empty(size)
    for i in range(begin + 1, size):
        # Cont, Kukanov & Stoikov (2014): bid-side demand minus ask-side supply change.
        e = 0.0
        if bid[i] >= bid[i - 1]:
            e += bid_size[i]
        if bid[i] <= bid[i - 1]:
            e -= bid_size[i - 1]
        if ask[i] <= ask[i - 1]:
            e -= ask_size[i]
        if ask[i] >= ask[i - 1]:
            e += ask_size[i - 1]
        events[i] = e
    total = 0.0
    for i in range(begin + 1, start):
        total += events[i]
    for i in range(start, size):
        total += events[i]
        out[i] = total
        total -= events[i - window + 1]
    return out


@njit(cache=True)
def _imbalance_kernel(bid_size: F64, ask_size: F64, out: F64) -> F64:
    size = bid_size.shape[0]
    for i in range(size):
        depth = bid_size[i] + ask_size[i]
        out[i] = (bid_size[i] - ask_size[i]) / depth if depth > 0.0 else np.nan
    return out


def sma(values: object, period: int) -> F64:
    """Simple moving average; the first `period - 1` outputs are NaN."""
    x = _series("values", values)
    return _sma_kernel(x, _period("SMA period", period, 1), _out(x))


def ema(values: object, period: int) -> F64:
    """Exponential moving average, alpha 2/(period+1), seeded with the SMA of the first window."""
    x = _series("values", values)
    return _ema_kernel(x, _period("EMA period", period, 1), _out(x))


def rsi(values: object, period: int = 14) -> F64:
    """Wilder's relative strength index (0-100); the first `period` outputs are NaN."""
    x = _series("values", values)
    return _rsi_kernel(x, _period("RSI period", period, 2), _out(x))


def macd(values: object, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[F64, F64, F64]:
    """MACD line, signal line and histogram; NaN for the first `slow + signal - 2` outputs."""
    fast = _period("MACD fast period", fast, 2)
    slow = _period("MACD slow period", slow, 2)
    signal = _period("MACD signal period", signal, 1)
    if slow < fast:
        # TA-Lib swaps them rather than failing: the slow EMA is the longer one.
        fast, slow = slow, fast
    x = _series("values", values)
    line, signal_line, histogram = _out(x), _out(x), _out(x)
    _macd_kernel(x, fast, slow, signal, line, signal_line, histogram)
    return line, signal_line, histogram


def bbands(
    values: object, period: int = 20, dev_up: float = 2.0, dev_down: float | None = None
) -> tuple[F64, F64, F64]:
    """Bollinger bands (upper, middle, lower) around an SMA with population deviation."""
    period = _period("Bollinger period", period, 2)
    down = dev_up if dev_down is None else dev_down
    for name, dev in (("upper", dev_up), ("lower", down)):
        if not (
            isinstance(dev, int | float) and math.isfinite(dev) and 0.0 < dev <= MAX_DEVIATIONS
        ):
            raise InvalidArgument(
                f"Bollinger {name} deviation multiplier must be in (0, {MAX_DEVIATIONS:g}], not {dev!r}."
            )
    x = _series("values", values)
    upper, middle, lower = _out(x), _out(x), _out(x)
    _bbands_kernel(x, period, float(dev_up), float(down), upper, middle, lower)
    return upper, middle, lower


def vwap(price: object, volume: object, period: int = 0) -> F64:
    """Volume-weighted average price: cumulative (period 0) or over the last `period` rows.

    NaN where no volume has traded yet (or, rolling, inside the first window).
    """
    if period != 0:
        period = _period("VWAP period", period, 1)
    p = _series("price", price)
    v = _series("volume", volume)
    _same_length(price=p, volume=v)
    if (v < 0).any():
        raise InvalidArgument("Volume must not be negative.")
    return _vwap_kernel(p, v, period, _out(p))


def order_flow_imbalance(
    bid: object, bid_size: object, ask: object, ask_size: object, window: int = 1
) -> F64:
    """Order-flow imbalance of best quotes (Cont-Kukanov-Stoikov), summed over `window` updates.

    Positive values mean net buying pressure at the top of book. The first `window`
    outputs are NaN: each event needs the quote before it.
    """
    window = _period("OFI window", window, 1)
    b, bs, a, asz = (
        _series(n, v)
        for n, v in (("bid", bid), ("bid_size", bid_size), ("ask", ask), ("ask_size", ask_size))
    )
    _same_length(bid=b, bid_size=bs, ask=a, ask_size=asz)
    return _ofi_kernel(b, bs, a, asz, window, _out(b))


def book_imbalance(bid_size: object, ask_size: object) -> F64:
    """Top-of-book imbalance (bid - ask) / (bid + ask) in [-1, 1]; NaN on an empty book."""
    bs = _series("bid_size", bid_size)
    asz = _series("ask_size", ask_size)
    _same_length(bid_size=bs, ask_size=asz)
    return _imbalance_kernel(bs, asz, _out(bs))
