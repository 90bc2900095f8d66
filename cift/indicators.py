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
EMAs and the signal EMA in a single fused loop. That loop is bound by the latency
of its recurrences, as TA-Lib's own fused loop is; a long series is cut in parts
computed two at a time in one loop (the core overlaps their recurrences), and on the
free cores when the machine has one to spare; each part after the first starts from a
guessed state that becomes the true one bit for bit, which is checked (`_macd_split`).

Parameters are validated here; absurd values raise InvalidArgument. No I/O.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import numpy.typing as npt
from numba import njit

from cift.parallel_tasks import HELPERS, core_to_spare, run_tasks
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
def _macd_seed(
    x: F64, fast: int, slow: int, signal: int, macd: F64, sig: F64, hist: F64
) -> tuple[int, float, float, float]:
    """Fill the warm-up (NaN) and the first output; (its index, fast EMA, slow EMA,
    signal EMA) there, the state every later point follows from. The index is the
    length of `x` when no output is due."""
    size = x.shape[0]
    begin = _first_valid(x)
    first = begin + slow - 1
    out_start = first + signal - 1
    if out_start >= size:
        macd[:] = np.nan
        sig[:] = np.nan
        hist[:] = np.nan
        return size, 0.0, 0.0, 0.0
    macd[:out_start] = np.nan
    sig[:out_start] = np.nan
    hist[:out_start] = np.nan
    k_fast = 2.0 / (fast + 1)
    k_slow = 2.0 / (slow + 1)
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
    return out_start, ema_fast, ema_slow, sig_value


@njit(cache=True, fastmath=_CONTRACT)
def _macd_steps(
    x: F64,
    lo: int,
    hi: int,
    state: tuple[float, float, float],
    k: tuple[float, float, float],
    macd: F64,
    sig: F64,
    hist: F64,
) -> tuple[float, float, float]:
    """Points lo..hi from `state` (fast, slow and signal EMA after point lo - 1, `k`
    their smoothing factors); the state after point hi - 1.

    No branch in the loop: one pass writes all three outputs. Each EMA step waits for
    the one before (subtract, then multiply-add), so the loop runs at that latency;
    two points per iteration let the signal step of the first overlap the price steps
    of the second (measured 5 % faster, same results).
    """
    ema_fast, ema_slow, sig_value = state
    k_fast, k_slow, k_sig = k
    i = lo
    while i + 1 < hi:
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
    if i < hi:
        ema_fast, ema_slow, sig_value = _macd_step(x[i], (ema_fast, ema_slow, sig_value), k)
        macd[i] = ema_fast - ema_slow
        sig[i] = sig_value
        hist[i] = macd[i] - sig_value
    return ema_fast, ema_slow, sig_value


@njit(cache=True, fastmath=_CONTRACT, inline="always")
def _macd_step(
    value: float, state: tuple[float, float, float], k: tuple[float, float, float]
) -> tuple[float, float, float]:
    """One point: the state after it (the same operations as `_macd_steps`)."""
    ema_fast, ema_slow, sig_value = state
    ema_fast = (value - ema_fast) * k[0] + ema_fast
    ema_slow = (value - ema_slow) * k[1] + ema_slow
    sig_value = ((ema_fast - ema_slow) - sig_value) * k[2] + sig_value
    return ema_fast, ema_slow, sig_value


@njit(cache=True, fastmath=_CONTRACT)
def _macd_kernel(x: F64, fast: int, slow: int, signal: int, macd: F64, sig: F64, hist: F64) -> None:
    out_start, ema_fast, ema_slow, sig_value = _macd_seed(x, fast, slow, signal, macd, sig, hist)
    k = (2.0 / (fast + 1), 2.0 / (slow + 1), 2.0 / (signal + 1))
    _macd_steps(x, out_start + 1, x.shape[0], (ema_fast, ema_slow, sig_value), k, macd, sig, hist)


# A part after the first starts its EMAs this many points early from a guess: in
# floating point the guessed state becomes the true one, bit for bit, in ~400-500
# steps (measured on random walks of 0.1 % and 2 % steps at several cuts).
_GUESS_LEAD = 4096
# Past a cut, the states kept from the guessed part to find where the true state
# meets them.
_MEET_WINDOW = 4096
# Below this many points the serial loop runs it all: each guessed part costs ~20 µs.
_SPLIT_MIN_POINTS = 1 << 17


@njit(cache=True, fastmath=_CONTRACT, nogil=True)
def _macd_guess(
    x: F64, lo: int, lead: int, k: tuple[float, float, float], recorded: F64
) -> tuple[float, float, float]:
    """The state to start point lo with, guessed `lead` points before (the price for
    both EMAs, a zero signal) and carried to lo; `recorded[j]` gets the state after
    lo + j reached from it."""
    guess = x[lo - lead - 1]
    state = (guess, guess, 0.0)
    for i in range(lo - lead, lo):
        state = _macd_step(x[i], state, k)
    ahead = state
    for j in range(recorded.shape[0]):
        ahead = _macd_step(x[lo + j], ahead, k)
        recorded[j, 0], recorded[j, 1], recorded[j, 2] = ahead
    return state


@njit(cache=True, fastmath=_CONTRACT, nogil=True)
def _macd_pair(
    x: F64,
    cuts: npt.NDArray[np.int64],
    pair: int,
    state: tuple[float, float, float],
    lead: int,
    k: tuple[float, float, float],
    macd: F64,
    sig: F64,
    hist: F64,
    at_cut: F64,
    at_end: F64,
    recorded: F64,
) -> None:
    """Parts 2 * pair and 2 * pair + 1 (points cuts[part]..cuts[part + 1]) in one loop,
    a point of each per iteration: the two parts' recurrences are independent, so
    the core overlaps them, and two points take about the time of one (1M points,
    thread CPU time: 1.50 vs 2.14 ms). Part 0 starts from the true `state`, every
    other part from `_macd_guess`. `at_cut[part]` and `at_end[part]` get each part's
    start and end state."""
    first = 2 * pair
    lo, cut, hi = cuts[first], cuts[first + 1], cuts[first + 2]
    if first > 0:
        state = _macd_guess(x, lo, lead, k, recorded[first])
    other = _macd_guess(x, cut, lead, k, recorded[first + 1])
    k_fast, k_slow, k_sig = k
    fast_a, slow_a, sig_a = state
    fast_b, slow_b, sig_b = other
    n = min(cut - lo, hi - cut)
    for j in range(n):
        value_a = x[lo + j]
        value_b = x[cut + j]
        fast_a = (value_a - fast_a) * k_fast + fast_a
        slow_a = (value_a - slow_a) * k_slow + slow_a
        fast_b = (value_b - fast_b) * k_fast + fast_b
        slow_b = (value_b - slow_b) * k_slow + slow_b
        line_a = fast_a - slow_a
        line_b = fast_b - slow_b
        sig_a = (line_a - sig_a) * k_sig + sig_a
        sig_b = (line_b - sig_b) * k_sig + sig_b
        macd[lo + j] = line_a
        sig[lo + j] = sig_a
        hist[lo + j] = line_a - sig_a
        macd[cut + j] = line_b
        sig[cut + j] = sig_b
        hist[cut + j] = line_b - sig_b
    end_a = _macd_steps(x, lo + n, cut, (fast_a, slow_a, sig_a), k, macd, sig, hist)
    end_b = _macd_steps(x, cut + n, hi, (fast_b, slow_b, sig_b), k, macd, sig, hist)
    at_cut[first, 0], at_cut[first, 1], at_cut[first, 2] = state
    at_cut[first + 1, 0], at_cut[first + 1, 1], at_cut[first + 1, 2] = other
    at_end[first, 0], at_end[first, 1], at_end[first, 2] = end_a
    at_end[first + 1, 0], at_end[first + 1, 1], at_end[first + 1, 2] = end_b


@njit(cache=True, fastmath=_CONTRACT, nogil=True)
def _macd_join(
    x: F64,
    cuts: npt.NDArray[np.int64],
    k: tuple[float, float, float],
    at_cut: F64,
    at_end: F64,
    recorded: F64,
    macd: F64,
    sig: F64,
    hist: F64,
) -> None:
    """Make every part true, in order: the true state at a cut is the end state of the
    (true) part before it. Equal to the part's guessed start, nothing to do (the usual
    case); else carry the true state on, rewriting outputs, until it equals a state
    the part recorded (from there its outputs and end state are true), or, if it never
    does, to the end of the series."""
    true_state = at_end[0]
    for part in range(1, cuts.shape[0] - 1):
        if (true_state == at_cut[part]).all():
            true_state = at_end[part]
            continue
        state = (true_state[0], true_state[1], true_state[2])
        met = False
        for j in range(recorded.shape[1]):
            i = cuts[part] + j
            state = _macd_step(x[i], state, k)
            macd[i] = state[0] - state[1]
            sig[i] = state[2]
            hist[i] = macd[i] - state[2]
            kept = recorded[part, j]
            if state[0] == kept[0] and state[1] == kept[1] and state[2] == kept[2]:
                met = True
                break
        if not met:
            start = cuts[part] + recorded.shape[1]
            _macd_steps(x, start, x.shape[0], state, k, macd, sig, hist)
            return
        true_state = at_end[part]


def _macd_split(
    x: F64,
    fast: int,
    slow: int,
    signal: int,
    macd: F64,
    sig: F64,
    hist: F64,
    cores: int = 1,
    lead: int = _GUESS_LEAD,
    window: int = _MEET_WINDOW,
) -> None:
    """`_macd_kernel` in parts computed at once, with the same results bit for bit.

    Each output follows from the state (fast, slow, signal EMA) after the point
    before. The series is cut in two parts per core; each core runs its two parts in
    one loop (`_macd_pair`). The first part runs from the true state; the others from
    a guessed state `lead` points before their cut, forgotten by (1 - k) a step
    until, in floating point, it is the true state bit for bit. `_macd_join` checks
    that at each cut and repairs what it must. An input of NaN makes every later state
    NaN, which equals nothing: that case runs on serially, giving the serial NaNs.
    """
    out_start, ema_fast, ema_slow, sig_value = _macd_seed(x, fast, slow, signal, macd, sig, hist)
    k = (2.0 / (fast + 1), 2.0 / (slow + 1), 2.0 / (signal + 1))
    lo = out_start + 1
    state = (ema_fast, ema_slow, sig_value)
    parts = 2 * cores
    cuts = np.linspace(lo, x.shape[0], parts + 1).astype(np.int64)
    if cuts[1] - lead <= lo or cuts[1] - cuts[0] <= window:
        _macd_steps(x, lo, x.shape[0], state, k, macd, sig, hist)
        return
    at_cut, at_end = np.empty((parts, 3)), np.empty((parts, 3))
    recorded = np.empty((parts, window, 3))
    outputs = (macd, sig, hist, at_cut, at_end, recorded)
    run_tasks(
        [partial(_macd_pair, x, cuts, pair, state, lead, k, *outputs) for pair in range(cores)]
    )
    _macd_join(x, cuts, k, at_cut, at_end, recorded, macd, sig, hist)


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
    if len(x) >= _SPLIT_MIN_POINTS:
        cores = HELPERS + 1 if core_to_spare() else 1
        _macd_split(x, fast, slow, signal, line, signal_line, histogram, cores)
    else:
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
