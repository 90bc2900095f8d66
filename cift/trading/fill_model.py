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
# Enum members read once: an enum class attribute costs far more than a global.
_BUY, _QUOTE = Side.BUY, PriceSource.QUOTE
_LIMIT, _STOP_LIMIT = OrderType.LIMIT, OrderType.STOP_LIMIT


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

    @property
    def free(self) -> bool:
        """Whether every fill's commission is zero cents (`NO_COMMISSION`), whatever its size.

        Both rates a positive zero: for a positive quantity and price both terms are
        then +0, so is their sum, and it rounds to 0.00.
        """
        per_share, bps = self.per_share, self.bps
        return (
            per_share.is_zero()
            and bps.is_zero()
            and not per_share.is_signed()
            and not bps.is_signed()
        )


# What `CommissionModel.commission` returns for every fill of a free model.
NO_COMMISSION = to_cents(ZERO)


def no_commission(qty: Decimal, price: Decimal) -> Decimal:
    """A free model's commission: `NO_COMMISSION`, without the arithmetic that makes it."""
    return NO_COMMISSION


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
    kind = order.order_type
    if kind is _LIMIT or kind is _STOP_LIMIT:
        return order.limit_price
    return None


class FillPricer:
    """One `FillModel`, its slippage factors worked out once for the tick loop."""

    __slots__ = (
        "_bps",
        "_buy_slip",
        "_per_share",
        "_sell_slip",
        "_slippage_bps",
        "commission",
        "displayed",
    )

    def __init__(self, model: FillModel) -> None:
        self.displayed = model.fill_at_displayed_size
        self._slippage_bps = model.slippage_bps
        self._per_share = model.commission.per_share
        self._bps = model.commission.bps
        # The model's own method, bound once: one call per fill instead of two; for a
        # free model (most paper accounts), its answer without the arithmetic.
        commission = model.commission
        self.commission = no_commission if commission.free else commission.commission
        slip = model.slippage_bps / BPS
        self._buy_slip = 1 + slip
        self._sell_slip = 1 - slip

    def price(
        self, side: Side, market_price: Decimal, limit: Decimal | None, tick: Decimal
    ) -> Decimal:
        if side is _BUY:
            price = round_up_to(market_price * self._buy_slip, tick)
            return price if limit is None or price <= limit else limit
        price = round_down_to(market_price * self._sell_slip, tick)
        if price <= ZERO:
            price = tick
        return price if limit is None or price >= limit else limit

    def explain(
        self,
        source: PriceSource,
        market_price: Decimal,
        quote: Quote | None,
        trade: Trade | None,
        limit: Decimal | None,
        available: Decimal | None,
    ) -> FillExplanation:
        """The explanation of a fill that took `market_price` from `quote` or `trade`.

        The tick named is the one whose price was taken: the trade for auction
        fills, else the quote.
        """
        tick = quote if source is _QUOTE or trade is None else trade
        # Positional, in FillExplanation's field order: this runs once per fill.
        if quote is None:
            bid = ask = bid_size = ask_size = None
        else:
            bid, ask, bid_size, ask_size = quote.bid, quote.ask, quote.bid_size, quote.ask_size
        return FillExplanation(
            source,
            0 if tick is None else tick.sequence,
            0 if tick is None else tick.ts_ns,
            market_price,
            bid,
            ask,
            bid_size,
            ask_size,
            None if trade is None else trade.price,
            None if trade is None else trade.size,
            available,
            limit,
            self.displayed,
            self._slippage_bps,
            self._per_share,
            self._bps,
        )
