"""The latest quote per symbol, as risk's price collars and market orders need it.

Only the newest quote of each symbol is kept. Freshness is measured from when
risk received the quote, and out-of-order deliveries are dropped by the market
data service's sequence number, so a replayed backlog never overwrites a newer
price.
"""

from __future__ import annotations

from dataclasses import dataclass

from cift.trading.pretrade.quote import Quote


@dataclass(slots=True)
class _Held:
    quote: Quote
    sequence: int


class QuoteBook:
    def __init__(self) -> None:
        self._latest: dict[str, _Held] = {}

    def update(self, quote: Quote, sequence: int) -> bool:
        """Keep `quote` if it is newer than the one held; True when it was kept."""
        held = self._latest.get(quote.symbol)
        if held is not None and sequence and sequence <= held.sequence:
            return False
        self._latest[quote.symbol] = _Held(quote, sequence)
        return True

    def latest(self, symbol: str) -> Quote | None:
        held = self._latest.get(symbol)
        return held.quote if held is not None else None

    def __len__(self) -> int:
        return len(self._latest)
