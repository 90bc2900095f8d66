"""Order classes: whether a bracket, OCO or OTO request is well formed, and its legs.

A trader sends one request — an entry plus `take_profit` and/or `stop_loss` — and
the broker records a parent order and its legs (Alpaca's shape):

- bracket: the entry (market or limit) is the parent; a take-profit limit and a
  stop-loss (stop, stop-limit or trailing stop) on the opposite side are its legs;
- OTO: the same with exactly one exit;
- OCO: two exits for a position already held: the take-profit limit is the parent
  and the stop-loss its leg, both working at once, on the request's side.

This module only shapes and checks; `contingent.py` decides what legs do as their
orders fill. Every refusal is INVALID_ARGUMENT and names the rule it broke, so a
trader can fix the request without reading our code. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from cift.runtime.errors import InvalidArgument
from cift.runtime.money import format_decimal
from cift.trading.orders import (
    Order,
    OrderClass,
    OrderRequest,
    new_order,
    validate_order_request,
)
from cift.trading.vocabulary import Instrument, OrderType, Side, TimeInForce

# Contingent orders live for a session or until canceled, as Alpaca's do: an IOC
# entry would leave its exits nothing to protect, an auction one no price to check.
GROUP_TIFS = (TimeInForce.DAY, TimeInForce.GTC)
ENTRY_TYPES = (OrderType.MARKET, OrderType.LIMIT)


@dataclass(frozen=True, slots=True)
class TakeProfit:
    limit_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class StopLoss:
    """A stop (stop_price), stop-limit (and limit_price) or trailing stop (a trail alone)."""

    stop_price: Decimal | None = None
    limit_price: Decimal | None = None
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ClassedRequest:
    """An order request with its class and exits, as decoded from the wire."""

    order: OrderRequest
    order_class: OrderClass = OrderClass.SIMPLE
    take_profit: TakeProfit | None = None
    stop_loss: StopLoss | None = None


@dataclass(frozen=True, slots=True)
class GroupPlan:
    """The orders to record: the parent, then its legs (take-profit first)."""

    order_class: OrderClass
    parent: OrderRequest
    legs: tuple[OrderRequest, ...] = ()


def opposite(side: Side) -> Side:
    return Side.SELL if side is Side.BUY else Side.BUY


def plan_group(
    request: ClassedRequest, instrument: Instrument, *, market_price: Decimal | None = None
) -> GroupPlan:
    """Check `request` and return its parent and legs; INVALID_ARGUMENT naming the broken rule.

    `market_price` is where a market entry would fill now (the ask for a buy, the
    bid for a sell); a bracket's exits are checked against it, or against the
    entry's limit. Without it only the exits' order against each other is checked.
    """
    kind = request.order_class
    entry = request.order
    if kind is OrderClass.SIMPLE:
        if request.take_profit is not None or request.stop_loss is not None:
            raise InvalidArgument(
                "take_profit and stop_loss apply to bracket, oco and oto orders only; "
                "set order_class."
            )
        return GroupPlan(kind, entry)
    name = kind.value
    if entry.time_in_force not in GROUP_TIFS:
        raise InvalidArgument(f"{name} orders accept time_in_force day or gtc only.")
    if entry.notional is not None:
        raise InvalidArgument(f"{name} orders are sized by qty, not notional.")
    if entry.extended_hours:
        raise InvalidArgument(f"{name} orders cannot trade in extended hours.")
    if kind is OrderClass.OCO:
        return _plan_oco(request, instrument)
    if entry.order_type not in ENTRY_TYPES:
        raise InvalidArgument(f"A {name} order's entry must be a market or limit order.")
    if kind is OrderClass.BRACKET and (request.take_profit is None or request.stop_loss is None):
        raise InvalidArgument("A bracket order needs both take_profit and stop_loss.")
    if kind is OrderClass.OTO and (request.take_profit is None) == (request.stop_loss is None):
        raise InvalidArgument("An oto order needs exactly one of take_profit or stop_loss.")
    validate_order_request(entry, instrument)
    exit_side = opposite(entry.side)
    legs: list[OrderRequest] = []
    if request.take_profit is not None:
        legs.append(_take_profit_leg(entry, exit_side, request.take_profit, instrument))
    if request.stop_loss is not None:
        legs.append(_stop_loss_leg(entry, exit_side, request.stop_loss, instrument))
    base = entry.limit_price if entry.order_type is OrderType.LIMIT else market_price
    _check_exit_prices(name, entry.side, legs, base)
    return GroupPlan(kind, entry, tuple(legs))


def _plan_oco(request: ClassedRequest, instrument: Instrument) -> GroupPlan:
    entry = request.order
    if entry.order_type is not OrderType.LIMIT:
        raise InvalidArgument(
            "An oco order has type limit: its take-profit limit is the parent order."
        )
    if request.take_profit is None or request.stop_loss is None:
        raise InvalidArgument("An oco order needs both take_profit and stop_loss.")
    take_profit_price = request.take_profit.limit_price
    if entry.limit_price is not None and entry.limit_price != take_profit_price:
        raise InvalidArgument(
            "An oco order's limit_price is its take_profit.limit_price; send one or make them equal."
        )
    parent = _take_profit_leg(entry, entry.side, request.take_profit, instrument)
    parent = replace(parent, client_order_id=entry.client_order_id)
    leg = _stop_loss_leg(entry, entry.side, request.stop_loss, instrument)
    # The exits close a position on the other side: a sell OCO closes a long.
    _check_exit_prices("oco", opposite(entry.side), [parent, leg], None)
    return GroupPlan(OrderClass.OCO, parent, (leg,))


def _validated_leg(field_name: str, leg: OrderRequest, instrument: Instrument) -> OrderRequest:
    try:
        validate_order_request(leg, instrument)
    except InvalidArgument as refused:
        raise InvalidArgument(f"{field_name}: {refused.message}") from None
    return leg


def _take_profit_leg(
    entry: OrderRequest, side: Side, take_profit: TakeProfit, instrument: Instrument
) -> OrderRequest:
    if take_profit.limit_price is None:
        raise InvalidArgument("take_profit.limit_price is required.")
    leg = OrderRequest(
        symbol=entry.symbol,
        side=side,
        order_type=OrderType.LIMIT,
        time_in_force=entry.time_in_force,
        qty=entry.qty,
        limit_price=take_profit.limit_price,
    )
    return _validated_leg("take_profit", leg, instrument)


def _stop_loss_leg(
    entry: OrderRequest, side: Side, stop_loss: StopLoss, instrument: Instrument
) -> OrderRequest:
    trails = stop_loss.trail_price is not None or stop_loss.trail_percent is not None
    if trails:
        if stop_loss.stop_price is not None or stop_loss.limit_price is not None:
            raise InvalidArgument(
                "A trailing stop_loss takes trail_price or trail_percent alone, "
                "without stop_price or limit_price."
            )
        kind = OrderType.TRAILING_STOP
    elif stop_loss.stop_price is None:
        raise InvalidArgument(
            "stop_loss needs stop_price (a stop or stop-limit) or trail_price / trail_percent."
        )
    else:
        kind = OrderType.STOP if stop_loss.limit_price is None else OrderType.STOP_LIMIT
    leg = OrderRequest(
        symbol=entry.symbol,
        side=side,
        order_type=kind,
        time_in_force=entry.time_in_force,
        qty=entry.qty,
        stop_price=stop_loss.stop_price,
        limit_price=stop_loss.limit_price,
        trail_price=stop_loss.trail_price,
        trail_percent=stop_loss.trail_percent,
    )
    _validated_leg("stop_loss", leg, instrument)
    if kind is OrderType.STOP_LIMIT:
        assert stop_loss.stop_price is not None and stop_loss.limit_price is not None
        selling = side is Side.SELL
        if (
            stop_loss.limit_price > stop_loss.stop_price
            if selling
            else stop_loss.limit_price < (stop_loss.stop_price)
        ):
            where = "at or below" if selling else "at or above"
            raise InvalidArgument(
                f"stop_loss.limit_price {format_decimal(stop_loss.limit_price)} must be {where} "
                f"stop_price {format_decimal(stop_loss.stop_price)} for a {side.value} stop-loss."
            )
    return leg


def _check_exit_prices(
    name: str, entry_side: Side, legs: list[OrderRequest], base: Decimal | None
) -> None:
    """Take-profit above and stop below the entry for a buy; mirrored for a sell."""
    buying = entry_side is Side.BUY
    take = next((leg.limit_price for leg in legs if leg.order_type is OrderType.LIMIT), None)
    stop = next((leg.stop_price for leg in legs if leg.stop_price is not None), None)
    above, below = ("above", "below") if buying else ("below", "above")
    if base is not None:
        if take is not None and (take <= base if buying else take >= base):
            raise InvalidArgument(
                f"{name} rule: for a {entry_side.value} entry take_profit.limit_price "
                f"{format_decimal(take)} must be {above} the entry price {format_decimal(base)}."
            )
        if stop is not None and (stop >= base if buying else stop <= base):
            raise InvalidArgument(
                f"{name} rule: for a {entry_side.value} entry stop_loss.stop_price "
                f"{format_decimal(stop)} must be {below} the entry price {format_decimal(base)}."
            )
    if take is not None and stop is not None and (take <= stop if buying else take >= stop):
        raise InvalidArgument(
            f"{name} rule: take_profit.limit_price {format_decimal(take)} must be {above} "
            f"stop_loss.stop_price {format_decimal(stop)} when closing a "
            f"{'long' if buying else 'short'} position."
        )


def new_group(
    plan: GroupPlan,
    instrument: Instrument,
    *,
    order_ids: list[str],
    leg_client_ids: list[str],
    account_id: str,
    now_ns: int,
    market_now_ns: int | None = None,
) -> tuple[Order, list[Order]]:
    """The parent and legs of `plan` as orders in status new, linked to each other.

    `order_ids` holds one id per order (parent first); legs get their own
    client order ids, as Alpaca gives its legs. A gtd parent's expire_at must be
    after `market_now_ns` (see `new_order`).
    """
    parent = new_order(
        plan.parent,
        instrument,
        order_id=order_ids[0],
        account_id=account_id,
        now_ns=now_ns,
        market_now_ns=market_now_ns,
    )
    parent.order_class = plan.order_class
    legs: list[Order] = []
    for leg_request, order_id, client_id in zip(
        plan.legs, order_ids[1:], leg_client_ids, strict=True
    ):
        leg = new_order(
            replace(leg_request, client_order_id=client_id),
            instrument,
            order_id=order_id,
            account_id=account_id,
            now_ns=now_ns,
        )
        leg.order_class = plan.order_class
        leg.parent_id = parent.order_id
        legs.append(leg)
    return parent, legs


def accept_group(parent: Order, legs: list[Order], now_ns: int) -> None:
    """Statuses on acceptance: the parent works; OCO's leg works too, other legs are held."""
    parent.accept(now_ns)
    working = parent.order_class is OrderClass.OCO
    for leg in legs:
        if working:
            leg.accept(now_ns)
        else:
            leg.hold(now_ns)
