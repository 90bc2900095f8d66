"""A deterministic market simulator: quotes and trades for a universe of instruments.

Each symbol's mid price follows a geometric random walk with the instrument's
volatility over the time elapsed between its events; quotes straddle the mid with a
spread of whole ticks and sizes in round lots; trades print between quotes at the
bid, at the ask or inside the spread. Events arrive as a Poisson process at a
configurable rate (simulated time; the feed paces it against the wall clock).

Determinism: one seed gives the same events whatever batch sizes they are drawn in,
because every event consumes exactly one fixed-width row of uniforms from one PCG64
stream. Prices are kept as integers of 1/10000 dollar so they never leave the tick
grid. No I/O here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numba import njit

from cift.runtime.errors import InvalidArgument
from services.marketdata.instruments import Instrument, Universe
from services.marketdata.ticks import SIDE_BUY, SIDE_SELL, SIDE_UNKNOWN, Quote, Tick, Trade

# Prices are carried in units of 1/10000 dollar: the finest (sub-penny) tick.
PRICE_UNITS_PER_DOLLAR = 10_000
# Volatility is annualised over US trading time: 252 sessions of 6.5 hours.
TRADING_SECONDS_PER_YEAR = 252 * 6.5 * 3600
UNIFORMS_PER_EVENT = 10
KIND_QUOTE = 0
KIND_TRADE = 1
MAX_RATE_PER_SYMBOL = 1_000_000.0

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class TickBatch:
    """A batch of simulated events as columns (the fast path for feeds and benchmarks).

    Prices are integer 1/10000 dollar units; `kind` is KIND_QUOTE or KIND_TRADE; for a
    quote the trade columns hold zeros and vice versa.
    """

    symbols: tuple[str, ...]
    kind: npt.NDArray[np.int8]
    symbol_index: npt.NDArray[np.int32]
    ts_ns: I64
    bid_units: I64
    ask_units: I64
    bid_size: I64
    ask_size: I64
    price_units: I64
    size: I64
    side: npt.NDArray[np.int8]

    def __len__(self) -> int:
        return int(self.kind.shape[0])

    def events(self) -> list[Tick]:
        """The batch as Quote/Trade values, in event order."""
        scale = float(PRICE_UNITS_PER_DOLLAR)
        names = self.symbols
        out: list[Tick] = []
        append = out.append
        for kind, sym, ts, bid, ask, bsz, asz, px, sz, side in zip(
            self.kind.tolist(),
            self.symbol_index.tolist(),
            self.ts_ns.tolist(),
            self.bid_units.tolist(),
            self.ask_units.tolist(),
            self.bid_size.tolist(),
            self.ask_size.tolist(),
            self.price_units.tolist(),
            self.size.tolist(),
            self.side.tolist(),
            strict=True,
        ):
            if kind == KIND_QUOTE:
                append(Quote(names[sym], ts, bid / scale, ask / scale, float(bsz), float(asz)))
            else:
                append(Trade(names[sym], ts, px / scale, float(sz), side))
        return out


@njit(cache=True)
def _box_muller(u1: float, u2: float) -> float:
    return math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)


@njit(cache=True)
def _quote_from_mid(log_mid: float, tick_units: int, u_spread: float) -> tuple[int, int]:
    mid_units = math.exp(log_mid) * PRICE_UNITS_PER_DOLLAR
    tick = tick_units if mid_units >= PRICE_UNITS_PER_DOLLAR else 1
    # Wider books on expensive names: about half a basis point of price in ticks.
    base = max(1, int(mid_units * 0.00005 / tick))
    extra = 0 if u_spread < 0.6 else (1 if u_spread < 0.9 else 2)
    spread = (base + extra) * tick
    bid = int(np.floor((mid_units - spread / 2.0) / tick)) * tick
    if bid < tick:
        bid = tick
    return bid, bid + spread


@njit(cache=True)
def _simulate(
    u: F64,
    log_mid: F64,
    sigma_per_sqrt_s: F64,
    tick_units: I64,
    round_lot: I64,
    last_ts: I64,
    bid_state: I64,
    ask_state: I64,
    clock: I64,
    rate_total: float,
    trade_probability: float,
    kind: npt.NDArray[np.int8],
    sym_out: npt.NDArray[np.int32],
    ts_out: I64,
    bid_out: I64,
    ask_out: I64,
    bsz_out: I64,
    asz_out: I64,
    px_out: I64,
    sz_out: I64,
    side_out: npt.NDArray[np.int8],
) -> None:
    n_symbols = log_mid.shape[0]
    now = clock[0]
    for e in range(u.shape[0]):
        row = u[e]
        # Exponential inter-arrival of the whole market; at least 1 ns so time is strict.
        dt_ns = int(-math.log(1.0 - row[0]) / rate_total * 1e9) + 1
        now += dt_ns
        s = min(int(row[1] * n_symbols), n_symbols - 1)
        elapsed_s = (now - last_ts[s]) * 1e-9
        last_ts[s] = now
        ts_out[e] = now
        sym_out[e] = s
        lot = round_lot[s]
        if row[4] < trade_probability and bid_state[s] > 0:
            kind[e] = 1
            bid = bid_state[s]
            ask = ask_state[s]
            loc = row[5]
            if loc < 0.45:
                px = bid
                side_out[e] = 2
            elif loc < 0.9:
                px = ask
                side_out[e] = 1
            else:
                # Inside the spread: the midpoint, or a random tick inside a wide book.
                step = tick_units[s] if bid >= PRICE_UNITS_PER_DOLLAR else 1
                ticks_wide = (ask - bid) // step
                if ticks_wide >= 2:
                    px = bid + step * (1 + int(row[6] * (ticks_wide - 1)))
                else:
                    px = (bid + ask) // 2
                side_out[e] = 0
            px_out[e] = px
            # Mostly odd lots and single round lots, now and then a block.
            sz_out[e] = 1 + int(row[7] ** 3 * 5 * lot)
            bid_out[e] = 0
            ask_out[e] = 0
            bsz_out[e] = 0
            asz_out[e] = 0
        else:
            kind[e] = 0
            z = _box_muller(row[2], row[3])
            log_mid[s] += sigma_per_sqrt_s[s] * math.sqrt(elapsed_s) * z
            bid, ask = _quote_from_mid(log_mid[s], tick_units[s], row[5])
            bid_state[s] = bid
            ask_state[s] = ask
            bid_out[e] = bid
            ask_out[e] = ask
            bsz_out[e] = (1 + int(row[8] * row[8] * 10)) * lot
            asz_out[e] = (1 + int(row[9] * row[9] * 10)) * lot
            px_out[e] = 0
            sz_out[e] = 0
            side_out[e] = 0
    clock[0] = now


class Simulator:
    """Generates ticks for a universe; the same seed always yields the same ticks."""

    def __init__(
        self,
        universe: Universe,
        *,
        seed: int,
        rate_per_symbol: float = 10.0,
        trade_probability: float = 0.25,
        start_ns: int = 0,
        start_prices: Mapping[str, float] | None = None,
    ) -> None:
        """`start_prices`: where a symbol's walk starts instead of its instrument's start price
        (a restart goes on from the last stored trade rather than jumping back)."""
        if not 0.0 < rate_per_symbol <= MAX_RATE_PER_SYMBOL:
            raise InvalidArgument(
                f"Simulator rate must be in (0, {MAX_RATE_PER_SYMBOL:g}] ticks/s per symbol, "
                f"not {rate_per_symbol}."
            )
        if not 0.0 <= trade_probability < 1.0:
            raise InvalidArgument("Trade probability must be in [0, 1).")
        if seed < 0:
            raise InvalidArgument("Simulator seed must be a non-negative integer.")
        instruments = universe.instruments
        self.symbols = tuple(i.symbol for i in instruments)
        self.rate_per_symbol = rate_per_symbol
        self._rng = np.random.Generator(np.random.PCG64(seed))
        self._rate_total = rate_per_symbol * len(instruments)
        self._trade_probability = trade_probability
        resumed = start_prices or {}
        self._log_mid = np.array(
            [math.log(_start_price(i, resumed.get(i.symbol))) for i in instruments]
        )
        self._sigma = np.array(
            [i.volatility / math.sqrt(TRADING_SECONDS_PER_YEAR) for i in instruments]
        )
        self._tick_units = np.array(
            [int(i.tick_size * PRICE_UNITS_PER_DOLLAR) for i in instruments], dtype=np.int64
        )
        if (self._tick_units < 1).any():
            raise InvalidArgument("Tick sizes below 0.0001 are not supported by the simulator.")
        self._round_lot = np.array([i.round_lot for i in instruments], dtype=np.int64)
        self._last_ts = np.full(len(instruments), start_ns, dtype=np.int64)
        # No quote yet: the first event of a symbol is always a quote.
        self._bid = np.zeros(len(instruments), dtype=np.int64)
        self._ask = np.zeros(len(instruments), dtype=np.int64)
        self._clock = np.array([start_ns], dtype=np.int64)

    @property
    def now_ns(self) -> int:
        """Timestamp of the last generated event (the simulated clock)."""
        return int(self._clock[0])

    def next_batch(self, count: int) -> TickBatch:
        """The next `count` events as columns."""
        if count < 0:
            raise InvalidArgument("Batch size must not be negative.")
        uniforms = self._rng.random((count, UNIFORMS_PER_EVENT))
        batch = TickBatch(
            symbols=self.symbols,
            kind=np.empty(count, dtype=np.int8),
            symbol_index=np.empty(count, dtype=np.int32),
            ts_ns=np.empty(count, dtype=np.int64),
            bid_units=np.empty(count, dtype=np.int64),
            ask_units=np.empty(count, dtype=np.int64),
            bid_size=np.empty(count, dtype=np.int64),
            ask_size=np.empty(count, dtype=np.int64),
            price_units=np.empty(count, dtype=np.int64),
            size=np.empty(count, dtype=np.int64),
            side=np.empty(count, dtype=np.int8),
        )
        _simulate(
            uniforms,
            self._log_mid,
            self._sigma,
            self._tick_units,
            self._round_lot,
            self._last_ts,
            self._bid,
            self._ask,
            self._clock,
            self._rate_total,
            self._trade_probability,
            batch.kind,
            batch.symbol_index,
            batch.ts_ns,
            batch.bid_units,
            batch.ask_units,
            batch.bid_size,
            batch.ask_size,
            batch.price_units,
            batch.size,
            batch.side,
        )
        return batch

    def next_events(self, count: int) -> list[Tick]:
        """The next `count` events as Quote/Trade values."""
        return self.next_batch(count).events()


__all__ = [
    "KIND_QUOTE",
    "KIND_TRADE",
    "SIDE_BUY",
    "SIDE_SELL",
    "SIDE_UNKNOWN",
    "Simulator",
    "TickBatch",
]


def _start_price(instrument: Instrument, resumed: float | None) -> float:
    """A resumed price if it is one a walk can start from, else the instrument's own."""
    if resumed is not None and math.isfinite(resumed) and resumed > 0:
        return resumed
    return float(instrument.start_price)
