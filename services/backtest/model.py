"""The values a backtest run is made of: what was asked, where it is, what came out.

Plain dataclasses only; no I/O, no protobuf. Money, prices and quantities are
`Decimal`; the statistics (returns, drawdowns, Sharpe) are the engine's floats.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


class RunStatus(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def finished(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELED)


UNFINISHED = (RunStatus.QUEUED, RunStatus.RUNNING)


@dataclass(frozen=True)
class RunSpec:
    """A validated request: every default filled in, every value in range."""

    strategy: str
    # As requested until the engine resolves them, then every parameter as a number.
    params: Mapping[str, object]
    symbols: tuple[str, ...]
    timeframe: str
    start: datetime
    end: datetime
    cash: Decimal
    commission: Decimal
    engine: str
    # Event engine only: buying power's multiple of equity, 1 (cash) to 4.
    margin_multiplier: Decimal = Decimal(1)
    # Event engine only: the risk limits pinned for this run by name (the rest keep
    # a new live account's defaults); None when the request set none.
    limits: Mapping[str, Decimal | int | bool] | None = None


# The library's statistics by name (`cift.backtest` result `stats`): numbers, the
# range's start and end as text, and None where a figure has no value.
Stats = Mapping[str, float | int | str | None]


@dataclass(frozen=True)
class TradeRecord:
    """One closed round trip."""

    symbol: str
    side: str  # "long" or "short"
    qty: Decimal
    entry_time: datetime
    exit_time: datetime
    entry_price: Decimal
    exit_price: Decimal
    pnl: Decimal
    return_pct: float
    commission: Decimal


@dataclass(frozen=True)
class EquityPoint:
    timestamp: datetime
    equity: Decimal
    drawdown_pct: float


@dataclass(frozen=True)
class Rejection:
    """An order the live pre-trade checks refused during the run."""

    time: datetime
    symbol: str
    side: str  # "buy" or "sell"
    qty: Decimal
    type: str  # the order type, e.g. "market"
    reason: str  # the rule's reason code, e.g. "MAX_ORDER_QTY"
    message: str


@dataclass(frozen=True)
class Outcome:
    """What a finished run produced."""

    stats: Stats
    trades: tuple[TradeRecord, ...]
    equity: tuple[EquityPoint, ...]
    rejections: tuple[Rejection, ...] = ()


@dataclass(frozen=True)
class Run:
    """A stored run as its owner reads it."""

    id: str
    user_id: str
    status: RunStatus
    spec: RunSpec
    bar_count: int
    progress: float
    stage: str
    error: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    stats: Stats | None = None
    trades: tuple[TradeRecord, ...] = field(default=())
    equity: tuple[EquityPoint, ...] = field(default=())
    rejections: tuple[Rejection, ...] = field(default=())


@dataclass(frozen=True)
class Progress:
    """A run's progress as watchers see it."""

    run_id: str
    status: RunStatus
    progress: float
    stage: str


@dataclass(frozen=True)
class StrategyParam:
    name: str
    description: str
    type: str  # "int" or "float"
    default: float
    min: float
    max: float  # 0: unbounded


@dataclass(frozen=True)
class StrategyInfo:
    name: str
    description: str
    params: tuple[StrategyParam, ...]
