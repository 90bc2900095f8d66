"""Protobuf messages to domain values and back, for the risk edge.

Wire decimals go through `cift.runtime.money` (garbage, NaN and exponent tricks
become INVALID_ARGUMENT naming the field). A well-formed but unacceptable value
(a zero quantity, a missing limit price) is not an error here: it reaches the
rules and comes back as a violation with its reason code.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from cift.marketdata.v1 import marketdata_pb2
from cift.risk.v1 import events_pb2, risk_pb2, rules_pb2
from cift.runtime.errors import InvalidArgument
from cift.runtime.limits_wire import limit_overrides_from_wire
from cift.runtime.money import decimal_of_double, format_decimal, optional_decimal
from cift.runtime.order_wire import (
    SIDE_FROM_PB,
    TIF_FROM_PB,
    TYPE_FROM_PB,
    enum_from_pb,
    enum_to_pb,
    price_terms_from_wire,
)
from cift.runtime.timestamps import timestamp_of
from cift.trading.pretrade.limits import LimitOverrides, RiskLimits
from cift.trading.pretrade.order import OrderToCheck
from cift.trading.pretrade.quote import Quote
from cift.trading.pretrade.rules import Reason
from cift.trading.pretrade.snapshot import ZERO
from cift.trading.pretrade.trading_state import TradingState
from services.risk.desk import CallerFigures

STATES_TO_WIRE = enum_to_pb(TradingState, rules_pb2.TradingState, "TRADING_STATE_")
STATES_FROM_WIRE = enum_from_pb(STATES_TO_WIRE)
REASONS_TO_WIRE = enum_to_pb(Reason, rules_pb2.ReasonCode, "REASON_CODE_")
MAX_SYMBOL_LEN = 32


def order_from_wire(request: risk_pb2.CheckOrderRequest) -> OrderToCheck:
    if not request.account_id:
        raise InvalidArgument("account_id is required.")
    symbol = request.symbol.strip().upper()
    if (
        not symbol
        or len(symbol) > MAX_SYMBOL_LEN
        or not symbol.replace(".", "").replace("/", "").isalnum()
    ):
        raise InvalidArgument(f'symbol must be a ticker such as "AAPL", not {request.symbol!r}.')
    side = SIDE_FROM_PB.get(request.side)
    if side is None:
        raise InvalidArgument("side must be ORDER_SIDE_BUY or ORDER_SIDE_SELL.")
    order_type = TYPE_FROM_PB.get(request.type)
    if order_type is None:
        raise InvalidArgument("type must be one of market, limit, stop, stop_limit, trailing_stop.")
    tif = TIF_FROM_PB.get(request.time_in_force)
    if tif is None:
        raise InvalidArgument("time_in_force must be one of day, gtc, gtd, ioc, fok, opg, cls.")
    return OrderToCheck(
        account_id=request.account_id,
        symbol=symbol,
        side=side,
        order_type=order_type,
        time_in_force=tif,
        **price_terms_from_wire(request),
    )


def figures_from_wire(request: risk_pb2.CheckOrderRequest) -> CallerFigures:
    buying_power = optional_decimal("buying_power", request.buying_power)
    if buying_power is None:
        raise InvalidArgument("buying_power is required: the account's buying power available now.")
    open_buy = optional_decimal("open_buy_qty", request.open_buy_qty) or ZERO
    open_sell = optional_decimal("open_sell_qty", request.open_sell_qty) or ZERO
    order_cost = optional_decimal("order_cost", request.order_cost)
    gross = optional_decimal("gross_exposure", request.gross_exposure)
    for name, value in (
        ("open_buy_qty", open_buy),
        ("open_sell_qty", open_sell),
        ("order_cost", order_cost),
        ("gross_exposure", gross),
    ):
        if value is not None and value < 0:
            raise InvalidArgument(f"{name} must not be negative (got {format_decimal(value)}).")
    if request.open_order_count < 0:
        raise InvalidArgument("open_order_count must not be negative.")
    return CallerFigures(
        buying_power=buying_power,
        order_cost=order_cost,
        position_qty=optional_decimal("position_qty", request.position_qty),
        gross_exposure=gross,
        open_buy_qty=open_buy,
        open_sell_qty=open_sell,
        open_order_count=request.open_order_count,
    )


def limits_to_wire(
    account_id: str,
    limits: RiskLimits,
    overrides: LimitOverrides,
    state: TradingState,
    effective: TradingState,
    updated_at: datetime | None,
) -> rules_pb2.RiskLimits:
    return rules_pb2.RiskLimits(
        account_id=account_id,
        max_order_qty=format_decimal(limits.max_order_qty),
        max_order_notional=format_decimal(limits.max_order_notional),
        max_position_qty=format_decimal(limits.max_position_qty),
        max_position_notional=format_decimal(limits.max_position_notional),
        max_gross_exposure=format_decimal(limits.max_gross_exposure),
        max_open_orders=limits.max_open_orders,
        orders_per_second=format_decimal(limits.orders_per_second),
        price_collar_pct=format_decimal(limits.price_collar_pct),
        allow_short=limits.allow_short,
        trading_state=STATES_TO_WIRE[state],
        effective_trading_state=STATES_TO_WIRE[effective],
        order_burst=limits.order_burst,
        max_quote_age_s=format_decimal(limits.max_quote_age_s),
        allow_notional_orders=limits.allow_notional_orders,
        overridden_fields=sorted(overrides.pinned()),
        updated_at=timestamp_of(updated_at),
    )


def overrides_from_wire(
    request: risk_pb2.UpdateRiskLimitsRequest,
) -> tuple[LimitOverrides, frozenset[str]]:
    """The fields present in a PATCH, and the fields to return to the default."""
    return limit_overrides_from_wire(request), frozenset(request.reset_fields)


def _price(value: float) -> Decimal:
    # No usable price (NaN, infinite, not positive) reads as none: zero.
    if value != value or value in (float("inf"), float("-inf")) or value <= 0:
        return ZERO
    return decimal_of_double(value)


def quote_from_wire(wire: marketdata_pb2.Quote, received_ns: int) -> Quote:
    return Quote(
        symbol=wire.symbol,
        bid=_price(wire.bid),
        ask=_price(wire.ask),
        last=_price(wire.last),
        ts_ns=received_ns,
    )


def risk_event(
    *,
    event_id: str,
    account_id: str,
    event_type: events_pb2.RiskEventType.ValueType,
    message: str,
    now_ns: int,
    actor: str,
    reason: Reason | None = None,
    symbol: str = "",
    request_id: str = "",
    client_order_id: str = "",
    state: TradingState | None = None,
    previous_state: TradingState | None = None,
) -> events_pb2.RiskEvent:
    event = events_pb2.RiskEvent(
        event_id=event_id,
        account_id=account_id,
        type=event_type,
        message=message,
        actor=actor,
        symbol=symbol,
        request_id=request_id,
        client_order_id=client_order_id,
    )
    event.timestamp.FromNanoseconds(now_ns)
    if reason is not None:
        event.reason_code = REASONS_TO_WIRE[reason]
    if state is not None:
        event.trading_state = STATES_TO_WIRE[state]
    if previous_state is not None:
        event.previous_trading_state = STATES_TO_WIRE[previous_state]
    return event
