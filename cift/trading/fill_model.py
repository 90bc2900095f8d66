"""The paper broker's fill settings and their arithmetic: price, commission, explanation.

A fill takes a market price (the opposite side of the quote, or an auction's
trade price), moves it by the slippage against the trader, rounds it to the tick
away from the trader (buys up, sells down: an off-grid price can only come from
slippage or a feed, and the broker must not improve on the market), then caps it
by the order's limit, so rounding never makes a fill worse than its limit. The
same settings are written into each fill's explanation. Pure Decimal arithmetic,
no order state and no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum

from cift.trading.fill_events import FillExplanation, PriceSource, Quote, Trade
from cift.trading.orders import Order
from cift.trading.vocabulary import ZERO, OrderType, Side, to_cents

BPS = Decimal(10000)


class StopTrigger(StrEnum):
    """Which price arms stops: the last trade (exchange practice) or the quote."""

    TRADE = "trade"
    QUOTE = "quote"


@dataclass(frozen=True, slots=True)
class CommissionModel:
    """Commission per fill: zero by default, or per share, or basis points of notional."""

    per_share: Decimal = ZERO
    bps: Decimal = ZERO

    def commission(self, qty: Decimal, price: Decimal) -> Decimal:
        amount = qty * self.per_share + qty * price * self.bps / BPS
        return to_cents(amount)


@dataclass(frozen=True, slots=True)
class FillModel:
    fill_at_displayed_size: bool = False
    slippage_bps: Decimal = ZERO
    stop_trigger: StopTrigger = StopTrigger.TRADE
    commission: CommissionModel = field(default_factory=CommissionModel)


def round_up_to(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(ROUND_CEILING) * step


def round_down_to(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(ROUND_FLOOR) * step


def working_limit(order: Order) -> Decimal | None:
    """The limit a fill of `order` must respect now (None: it takes any price)."""
    if order.order_type is OrderType.LIMIT or order.order_type is OrderType.STOP_LIMIT:
        return order.limit_price
    return None


class FillPricer:
    """One `FillModel`, its slippage factors worked out once for the tick loop."""

    __slots__ = ("_buy_slip", "_sell_slip", "displayed", "model")

    def __init__(self, model: FillModel) -> None:
        self.model = model
        self.displayed = model.fill_at_displayed_size
        slip = model.slippage_bps / BPS
        self._buy_slip = 1 + slip
        self._sell_slip = 1 - slip

    def price(
        self, side: Side, market_price: Decimal, limit: Decimal | None, tick: Decimal
    ) -> Decimal:
        if side is Side.BUY:
            price = round_up_to(market_price * self._buy_slip, tick)
            return price if limit is None or price <= limit else limit
        price = round_down_to(market_price * self._sell_slip, tick)
        if price <= 0:
            price = tick
        return price if limit is None or price >= limit else limit

    def commission(self, qty: Decimal, price: Decimal) -> Decimal:
        return self.model.commission.commission(qty, price)

    def explain(
        self,
        source: PriceSource,
        market_price: Decimal,
        *,
        quote: Quote | None,
        trade: Trade | None,
        limit: Decimal | None,
        available: Decimal | None,
    ) -> FillExplanation:
        """The explanation of a fill that took `market_price` from `quote` or `trade`.

        The tick named is the one whose price was taken: the trade for auction
        fills, else the quote.
        """
        model = self.model
        tick = quote if source is PriceSource.QUOTE or trade is None else trade
        return FillExplanation(
            source=source,
            tick_sequence=tick.sequence if tick is not None else 0,
            tick_ts_ns=tick.ts_ns if tick is not None else 0,
            market_price=market_price,
            bid=quote.bid if quote is not None else None,
            ask=quote.ask if quote is not None else None,
            bid_size=quote.bid_size if quote is not None else None,
            ask_size=quote.ask_size if quote is not None else None,
            trade_price=trade.price if trade is not None else None,
            trade_size=trade.size if trade is not None else None,
            available_qty=available,
            limit_price=limit,
            displayed_size_only=self.displayed,
            slippage_bps=model.slippage_bps,
            commission_per_share=model.commission.per_share,
            commission_bps=model.commission.bps,
        )
