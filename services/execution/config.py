"""Settings of the execution process: the account model and the paper fill model."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from cift.runtime.config import CommonConfig, setting


@dataclass(frozen=True)
class ExecutionConfig(CommonConfig):
    margin_multiplier: Decimal = setting(
        Decimal("1"), "Buying power multiplier of new accounts; 1 = cash account."
    )
    fill_at_displayed_size: bool = setting(
        False, "Fill market and limit orders only up to the quote's displayed size per quote."
    )
    slippage_bps: Decimal = setting(
        Decimal("0"), "Slippage against the trader, in basis points of the quote price."
    )
    stop_trigger: str = setting(
        "trade", "Which price arms stop orders: trade (last sale) or quote."
    )
    commission_per_share: Decimal = setting(
        Decimal("0"), "Commission per share filled, in dollars."
    )
    commission_bps: Decimal = setting(Decimal("0"), "Commission in basis points of fill notional.")
    clock_poll_s: float = setting(
        15.0, "How often the market clock is read: session phase, auctions, day and gtd expiry."
    )
    equity_snapshot_s: float = setting(
        60.0, "Seconds between equity snapshots (portfolio history)."
    )
    risk_timeout_s: float = setting(2.0, "Deadline of one pre-trade risk check.")
    risk_stream_threshold: int = setting(
        1,
        "Risk checks in flight above which new ones share the CheckOrders stream (else unary).",
    )
    risk_stream_busy_s: float = setting(
        0.005,
        "Checks arriving closer together than this also share the stream (a busy caller).",
    )
    risk_stream_batch: int = setting(256, "Most risk checks sent in one CheckOrders message.")
    risk_stream_unanswered: int = setting(
        1,
        "CheckOrders messages sent before their answer comes; checks arriving meanwhile "
        "wait to go together in the next one.",
    )
    water_mark_flush_s: float = setting(
        1.0, "Seconds between saves of moved trailing-stop water marks (one batch each)."
    )
    fill_engine_group: str = setting(
        "execution-fill-engine",
        "Kafka consumer group of the fill engine (a separate group only for isolated runs).",
    )
