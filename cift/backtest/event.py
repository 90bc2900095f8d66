"""The event engine: a Strategy's `init` and `on_bar`, bar by bar, on the paper account.

Orders go through `EventBroker` (broker.py), which replays each bar as ticks into
the fill engine the execution service runs live and settles fills in its ledger.
A signal strategy (a built-in, or a user's signal function) runs here too, through
`SignalAdapter`: its target at each close becomes market orders at the next open,
so the two engines can be checked against each other trade by trade.

Several symbols share one timeline: bars are visited in time order, symbols by name
within a timestamp, and `on_bar` sees one symbol's bar at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import polars as pl

from cift import indicators
from cift.backtest.bars import SymbolBars
from cift.backtest.broker import EventBroker, TapeEvent
from cift.backtest.result import BacktestResult, SymbolCurve, assemble
from cift.backtest.signals import SignalStrategy
from cift.runtime.errors import InvalidArgument
from cift.trading.pretrade.limits import RiskLimits
from cift.trading.vocabulary import Side

PROGRESS_EVERY = 65_536


class Strategy:
    """Subclass with `init` (once, before the first bar) and `on_bar` (at each bar's close).

    In `on_bar`, `self.symbol` is the symbol whose bar just closed and `self.i` its
    index in `self.data[self.symbol]` (a SymbolBars: open, high, low, close, volume
    arrays). Class attributes that are numbers are the strategy's parameters; the
    run's params override them. `self.indicators` is `cift.indicators`, the kernels
    market data serves (sma, ema, rsi, macd, bbands, vwap).
    """

    indicators: ClassVar[Any] = indicators

    def __init__(
        self, broker: EventBroker, data: dict[str, SymbolBars], params: dict[str, Any]
    ) -> None:
        self._broker = broker
        self.data = data
        self.symbol = next(iter(data))
        self.i = -1
        declared = declared_params(type(self))
        for name, value in params.items():
            if name not in declared:
                raise InvalidArgument(
                    f"Unknown parameter {name} for {type(self).__name__}; it takes "
                    f"{', '.join(sorted(declared)) or 'no parameters'}."
                )
            setattr(self, name, type(declared[name])(value))

    def init(self) -> None:
        """Compute indicators here, once, over whole columns."""

    def on_bar(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define on_bar.")

    def active_bars(self, symbol: str) -> npt.NDArray[np.int64] | None:
        """Bars (indices) where `on_bar` may act; None: every bar.

        A strategy that knows after `init` where it can act says so, and the
        engine calls it only there and on bars where its orders are live: the
        other bars cannot change anything, so the result is the same, sooner.
        """
        return None

    def buy(self, qty: float | None = None, *, symbol: str | None = None, **order: Any) -> str:
        """Buy at the next open (market) or as `limit`/`stop`/`trail_price`/`trail_percent` say.

        Without qty, with all of the symbol's sleeve. `take_profit` and `stop_loss`
        make it a bracket: both exits rest once it fills, and one filling cancels
        the other. Returns the order's id.
        """
        return self._broker.place(Side.BUY, symbol or self.symbol, qty, **order)

    def sell(self, qty: float | None = None, *, symbol: str | None = None, **order: Any) -> str:
        """Sell (or sell short) the same way as `buy`."""
        return self._broker.place(Side.SELL, symbol or self.symbol, qty, **order)

    def close_position(self, symbol: str | None = None) -> None:
        """Flatten the symbol's position with a market order at the next open."""
        self._broker.close_position(symbol or self.symbol)

    def cancel(self, order_id: str) -> bool:
        """Cancel a resting or pending order; False if it already filled or closed."""
        return self._broker.cancel(order_id)

    def position(self, symbol: str | None = None) -> float:
        """Shares held in the symbol (negative when short)."""
        return float(self._broker.position(symbol or self.symbol))

    @property
    def equity(self) -> float:
        """Cash plus every position marked at its symbol's latest close."""
        return self._broker.equity()

    @property
    def cash(self) -> float:
        return float(self._broker.ledger.cash)


def declared_params(cls: type) -> dict[str, int | float]:
    """Public numeric class attributes of a Strategy subclass: its tunable parameters."""
    found: dict[str, int | float] = {}
    for klass in reversed(cls.__mro__):
        if klass in (Strategy, object):
            continue
        for name, value in vars(klass).items():
            public = not name.startswith("_")
            if public and isinstance(value, int | float) and not isinstance(value, bool):
                found[name] = value
    return found


class SignalAdapter(Strategy):
    """Runs a signal strategy on the event engine: each target, all in, at the next open."""

    def __init__(
        self,
        broker: EventBroker,
        data: dict[str, SymbolBars],
        signal: SignalStrategy,
        params: dict[str, Any],
    ) -> None:
        super().__init__(broker, data, {})
        self.signal = signal
        self.signal_params = params
        self.turn_at: dict[str, dict[int, int]] = {}  # bar -> direction taken there
        self.active: dict[str, npt.NDArray[np.int64]] = {}
        self.wants: dict[str, list[int]] = {}  # the direction taken at each active bar

    def init(self) -> None:
        for symbol, bars in self.data.items():
            targets = self.signal.targets(bars, self.signal_params)
            self.active[symbol], self.wants[symbol] = turns(targets)
            self.turn_at[symbol] = dict(
                zip(self.active[symbol].tolist(), self.wants[symbol], strict=True)
            )

    def active_bars(self, symbol: str) -> npt.NDArray[np.int64] | None:
        return self.active[symbol]

    def on_bar(self) -> None:
        want = self.turn_at[self.symbol].get(self.i)
        if want is not None:
            self._broker.target(self.symbol, want)


def turns(targets: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.int64], list[int]]:
    """Bars where the held direction changes (NaN keeps it; it starts flat), and the new one.

    Only there can a signal strategy act: everywhere else its target repeats what
    it holds. Found over the whole column at once, so the loop visits trades only.
    """
    wants = np.sign(targets)
    known = ~np.isnan(wants)
    last = np.maximum.accumulate(np.where(known, np.arange(len(wants)), -1))
    held = np.where(last >= 0, wants[np.maximum(last, 0)], 0.0)
    before = np.concatenate(([0.0], held[:-1]))
    bars = np.flatnonzero(held != before)
    return bars, held[bars].astype(np.int64).tolist()


def run_event(
    per_symbol: list[SymbolBars],
    strategy: SignalStrategy | type[Strategy],
    params: dict[str, Any],
    cash: float,
    commission: float,
    progress: Callable[[float], None] | None,
    *,
    tape: list[TapeEvent] | None = None,
    limits: RiskLimits | None = None,
    margin_multiplier: Decimal = Decimal(1),
) -> BacktestResult:
    """Run on the event engine; `tape`, when given, receives every tick, order and fill.

    Every order a strategy places passes the live pre-trade path first (pretrade.py):
    `limits` are the risk limits (a new live account's by default), and
    `margin_multiplier` the account's (1: a cash account, as execution opens them).
    """
    broker = EventBroker(
        per_symbol, cash, commission, limits=limits, margin_multiplier=margin_multiplier
    )
    broker.tape = tape
    data = {b.symbol: b for b in per_symbol}
    instance: Strategy
    if isinstance(strategy, SignalStrategy):
        instance = SignalAdapter(broker, data, strategy, params)
        name, warmup = strategy.name, strategy.warmup(params)
    else:
        instance = strategy(broker, data, params)
        name, warmup = strategy.__name__, 0
        params = {**declared_params(strategy), **params}
    instance.init()
    if len(per_symbol) == 1 and isinstance(instance, SignalAdapter):
        symbol = per_symbol[0].symbol
        _run_turns(broker, per_symbol[0], instance.active[symbol], instance.wants[symbol], progress)
    elif len(per_symbol) == 1:
        _run_one_symbol(instance, broker, per_symbol[0], progress)
    else:
        _run_timeline(instance, broker, per_symbol, progress)
    if progress is not None:
        progress(1.0)
    results = [broker.results(b.symbol) for b in per_symbol]
    return assemble(
        strategy=name,
        params=params,
        engine="event",
        curves=[SymbolCurve(b, e, p) for b, (e, p, _) in zip(per_symbol, results, strict=True)],
        trades=pl.concat([trades for _, _, trades in results]),
        commissions=float(broker.ledger.commissions),
        first_trading_bar=max(warmup, 0),
        rejections=broker.gate.frame(),
    )


def _run_one_symbol(
    instance: Strategy,
    broker: EventBroker,
    bars: SymbolBars,
    progress: Callable[[float], None] | None,
) -> None:
    symbol = bars.symbol
    instance.symbol = symbol
    ts_ns = bars.ts_ns.tolist()
    n = len(ts_ns)
    on_bar, replay, state = instance.on_bar, broker.replay_bar, broker.symbols[symbol]
    active = instance.active_bars(symbol)
    # next_active[i]: the first active bar at or after i (n when none is left).
    if active is None:
        next_active = list(range(n + 1))
    else:
        marks = np.full(n + 1, n, dtype=np.int64)
        marks[active] = active
        next_active = np.minimum.accumulate(marks[::-1])[::-1].tolist()
    i = next_active[0]
    reported = 0
    while i < n:
        replay(symbol, i, ts_ns[i])
        instance.i = i
        on_bar()
        # Live orders need every bar's ticks; otherwise jump to the next bar that can act.
        i = i + 1 if state.pending or state.open_ids else next_active[i + 1]
        if progress is not None and i - reported >= PROGRESS_EVERY:
            reported = i
            progress(i / n)


def _run_turns(
    broker: EventBroker,
    bars: SymbolBars,
    at: npt.NDArray[np.int64],
    wants: list[int],
    progress: Callable[[float], None] | None,
) -> None:
    """One symbol's signal strategy: at each turn, the new target at the next bar's open.

    What `SignalAdapter.on_bar` would do, without visiting the bars in between: a
    target is a market order that fills at that open, so nothing is left working.
    """
    symbol, n = bars.symbol, len(bars)
    # The opens' timestamps, read for every turn at once (the last bar has no next open).
    ts_next = bars.ts_ns[np.minimum(at + 1, n - 1)].tolist()
    target, replay = broker.target, broker.replay_bar
    reported = 0
    for i, want, ts in zip(at.tolist(), wants, ts_next, strict=True):
        target(symbol, want)
        if i + 1 >= n:
            break  # placed at the last close: it never reaches an open
        replay(symbol, i + 1, ts)
        if progress is not None and i - reported >= PROGRESS_EVERY:
            reported = i
            progress(i / n)


def _run_timeline(
    instance: Strategy,
    broker: EventBroker,
    per_symbol: Sequence[SymbolBars],
    progress: Callable[[float], None] | None,
) -> None:
    timeline = _timeline(per_symbol)
    total = len(timeline)
    on_bar, replay = instance.on_bar, broker.replay_bar
    for step, (ts, symbol, i) in enumerate(timeline):
        replay(symbol, i, ts)
        instance.symbol = symbol
        instance.i = i
        on_bar()
        if progress is not None and not step % PROGRESS_EVERY:
            progress(step / total)


def _timeline(per_symbol: Sequence[SymbolBars]) -> list[tuple[int, str, int]]:
    """(timestamp, symbol, bar index) of every bar, in time order, symbols by name within a time."""
    frame = pl.concat(
        [
            pl.DataFrame(
                {
                    "ts": b.ts_ns,
                    "symbol": pl.Series([b.symbol] * len(b), dtype=pl.String),
                    "i": np.arange(len(b), dtype=np.int64),
                }
            )
            for b in per_symbol
        ]
    ).sort("ts", "symbol")
    return list(frame.iter_rows())
