"""What the use cases need from outside the service, as typed protocols.

Adapters implement them (`services/execution/adapters/upstream.py` over gRPC); unit tests
pass fakes. Nothing here knows how a call travels.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from cift.risk.v1 import risk_pb2
from cift.trading.vocabulary import Instrument


@dataclass(frozen=True, slots=True)
class MarketClock:
    now_ns: int
    is_open: bool
    # None when the calendar never closes (the simulator's always-open default).
    next_close_ns: int | None
    next_open_ns: int | None = None


class Market(Protocol):
    async def instrument(self, symbol: str) -> Instrument: ...

    async def latest_prices(
        self, symbols: list[str]
    ) -> dict[str, tuple[Decimal, Decimal, Decimal]]: ...

    async def clock(self) -> MarketClock: ...

    async def previous_closes(
        self, symbols: list[str], day_start_ns: int
    ) -> dict[str, Decimal]: ...


class Risk(Protocol):
    async def check(self, request: risk_pb2.CheckOrderRequest) -> risk_pb2.CheckOrderResponse: ...


@dataclass(frozen=True, slots=True)
class AccountSettings:
    opening_cash: Decimal
    margin_multiplier: Decimal
