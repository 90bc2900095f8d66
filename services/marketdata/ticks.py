"""The tick values every part of market data passes around: quotes and trades.

Market-data prices are doubles (every vendor sends them so); they always sit on the
instrument's tick grid, which the fill engine relies on when it rounds. Timestamps
are integer nanoseconds since the Unix epoch (`ts_ns`), never floats.

They are named tuples rather than frozen dataclasses: just as immutable, but made
in a third of the time (a frozen dataclass sets each field through
`object.__setattr__`), and a provider feed makes one per quote at 100k quotes/s.
Copies with changes use `_replace`. Venue fields
(exchange, conditions, tape, trade id) are filled by the provider feeds as the
provider names them, and stay empty for the simulator and file replay.
"""

from __future__ import annotations

from typing import NamedTuple

# Which side took liquidity in a trade print: the buyer lifted the ask, the seller
# hit the bid, or the print happened inside the spread (midpoint or hidden order).
SIDE_UNKNOWN = 0
SIDE_BUY = 1
SIDE_SELL = 2


class Quote(NamedTuple):
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


class Trade(NamedTuple):
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
