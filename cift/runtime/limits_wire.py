"""Risk limit overrides as the protos carry them: each field present only where pinned.

Risk's UpdateRiskLimits and a backtest's BacktestRiskLimits both name their fields
after `LimitOverrides`' (proto3 `optional`, so a field is listed only when sent,
zero and false included) and carry decimals as strings. Both are read here, so a
limit a backtest pins is decoded exactly as risk decodes the same PATCH.
"""

from __future__ import annotations

from google.protobuf.message import Message

from cift.runtime.money import require_decimal
from cift.trading.pretrade.limits import LIMIT_FIELDS, LimitOverrides


def limit_overrides_from_wire(message: Message, *, field_prefix: str = "") -> LimitOverrides:
    """The limits `message` pins, decimals checked; a bad one's error names
    `field_prefix` + the field (`limits.max_order_qty` inside a backtest spec)."""
    pinned = {
        field.name: require_decimal(field_prefix + field.name, value)
        if isinstance(value, str)
        else value
        for field, value in message.ListFields()
        if field.name in LIMIT_FIELDS
    }
    # The names are the dataclass's own (filtered above); the values' types are the proto's.
    return LimitOverrides(**pinned)  # type: ignore[arg-type]
