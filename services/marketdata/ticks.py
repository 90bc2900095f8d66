"""The tick values every part of market data passes around: quotes and trades.

Market-data prices are doubles (every vendor sends them so); they always sit on the
instrument's tick grid, which the fill engine relies on when it rounds. Timestamps
are integer nanoseconds since the Unix epoch (`ts_ns`), never floats. Venue fields
(exchange, conditions, tape, trade id) are filled by the provider feeds as the
provider names them, and stay empty for the simulator and file replay.
"""

from __future__ import annotations

from dataclasses import dataclass

# Which side took liquidity in a trade print: the buyer lifted the ask, the seller
# hit the bid, or the print happened inside the spread (midpoint or hidden order).
SIDE_UNKNOWN = 0
SIDE_BUY = 1
SIDE_SELL = 2


@dataclass(frozen=True, slots=True)
class Quote:
    """Top of book for one symbol at one instant."""

    symbol: str
    ts_ns: int
    bid: float
    ask: float
    bid_size: float
    ask_size: float
    bid_exchange: str = ""
    ask_exchange: str = ""
    conditions: tuple[str, ...] = ()
    tape: str = ""


@dataclass(frozen=True, slots=True)
class Trade:
    """One print on the tape."""

    symbol: str
    ts_ns: int
    price: float
    size: float
    side: int = SIDE_UNKNOWN
    exchange: str = ""
    conditions: tuple[str, ...] = ()
    tape: str = ""
    trade_id: str = ""


Tick = Quote | Trade
