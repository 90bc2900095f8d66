"""The live pre-trade path for a backtest's orders: buying-power reservation, then risk's rules.

Live, an order goes from `new` to `accepted` only after execution has priced its
buying-power reservation with the ledger's formulas (`reservation_price`,
`reservation_for`) and the risk service has judged it with `check_order` against a
snapshot of the account (buying power net of the other open orders'
reservations, position, open orders, gross exposure at cost) and the latest quote.
`PreTradeGate` does the same for the event engine, reading those figures from the
backtest's own ledger and fill engine instead of the account row, with every rule
of `ALL_RULES` and the limits the run was given (by default a new live account's).
A refused order becomes `rejected` with the first violation's sentence as its
reason, never reaches the fill engine, and is kept in `rejections`.

What a backtest has no counterpart for: the order rate (a token bucket on the
wall clock of API calls; the snapshot carries no rate decision, so that rule is
silent) and the risk desk's kill switch and halts (both states stay active).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import polars as pl

from cift.trading.fills import Fill, FillEngine
from cift.trading.ledger import (
    Ledger,
    buying_power,
    order_reservation_price,
    released_reservation,
    reservation_for,
)
from cift.trading.orders import Order, OrderStatus
from cift.trading.pretrade.checks import (
    check_order,
    is_plain_market,
    rules_for_plain_market,
    rules_that_can_refuse,
)
from cift.trading.pretrade.limits import RiskLimits, validate
from cift.trading.pretrade.quote import Quote
from cift.trading.pretrade.rules import Rule
from cift.trading.pretrade.token_bucket import RateDecision
from cift.trading.pretrade.trading_state import TradingState
from cift.trading.vocabulary import ZERO, Instrument, Side

# Enum members read once: an enum class attribute costs far more than a global.
_BUY, _PARTIALLY_FILLED = Side.BUY, OrderStatus.PARTIALLY_FILLED


@dataclass(frozen=True, slots=True)
class Rejection:
    """An order the live pre-trade path would have refused, as the backtest met it."""

    bar: int
    ts_ns: int
    order_id: str
    symbol: str
    side: str
    order_type: str
    qty: float
    reason: str  # the rule's machine-readable reason (INSUFFICIENT_BUYING_POWER, ...)
    message: str


class AccountView:
    """The account as the rules read it (a `SnapshotView`), one per gate, set before each check.

    The risk service builds a `CheckSnapshot` per order; here the figures change
    between two orders only by fills and reservations, so the gate keeps this one
    view and writes the current figures into it, reading them straight from the
    ledger and the fill engine. Nothing keeps a view past its check.
    """

    __slots__ = (
        "account_state",
        "buying_power",
        "caller_order_cost",
        "gross_exposure",
        "instrument",
        "limits",
        "now_ns",
        "open_buy_qty",
        "open_order_count",
        "open_sell_qty",
        "position_qty",
        "quote",
        "rate",
        "venue_state",
    )

    def __init__(self, limits: RiskLimits) -> None:
        self.now_ns = 0
        self.limits = limits
        self.buying_power = ZERO
        self.instrument: Instrument | None = None
        self.quote: Quote | None = None
        # No desk here: the kill switch and halts stay active, the rate unconsulted.
        self.account_state = TradingState.ACTIVE
        self.venue_state = TradingState.ACTIVE
        self.position_qty = ZERO
        self.open_buy_qty = ZERO
        self.open_sell_qty = ZERO
        self.open_order_count = 0
        self.gross_exposure = ZERO
        self.caller_order_cost: Decimal | None = None
        self.rate: RateDecision | None = None


class PreTradeGate:
    """Reservations and risk checks of one backtest account (execution's and risk's jobs)."""

    def __init__(self, limits: RiskLimits, margin_multiplier: Decimal) -> None:
        validate(limits)
        self.limits = limits
        self.margin_multiplier = margin_multiplier
        self.reserved = ZERO  # buying power held by the account's open orders
        self.rejections: list[Rejection] = []
        self._view = AccountView(limits)
        # Per symbol, and whether the order is a plain market one: the rules that can
        # refuse it (its instrument and the account's states are fixed for the run;
        # a plain market order has no prices for four of them to judge), and the
        # last quote built.
        self._rules: dict[tuple[str, bool], tuple[Rule, ...]] = {}
        self._quote: dict[str, Quote] = {}

    def admit(
        self,
        order: Order,
        instrument: Instrument,
        ledger: Ledger,
        engine: FillEngine,
        bar: int,
        now_ns: int,
    ) -> bool:
        """Reserve and check a `new` order; False (and the order rejected) if live would refuse it."""
        symbol = order.symbol
        side = order.side
        bid, ask, last = engine.last_prices(symbol)
        # The replayed quote has both sides at the tick's price.
        price = order_reservation_price(order, bid, ask)
        held = ledger.positions.get(symbol)
        position = ZERO if held is None else held.qty
        open_orders = engine.open_orders_of(order.account_id, symbol)
        cost = None
        if price is not None and price > ZERO:
            same_side = open_orders.buy_qty if side is _BUY else open_orders.sell_qty
            cost = reservation_for(
                side, order.qty, order.notional, price, position, same_side
            )  # fmt: skip
        gross = ledger.gross_cost
        available = (
            buying_power(ledger.cash, ledger.net_cost, gross, self.margin_multiplier)
            - self.reserved
        )
        view = self._view
        view.now_ns = now_ns
        view.buying_power = available if available > ZERO else ZERO  # max(ZERO, available)
        view.instrument = instrument
        view.quote = None if last is None else self._quote_of(symbol, bid, ask, last, now_ns)
        view.position_qty = position
        view.open_buy_qty = open_orders.buy_qty
        view.open_sell_qty = open_orders.sell_qty
        view.open_order_count = open_orders.count
        view.gross_exposure = gross
        view.caller_order_cost = cost
        key = (symbol, is_plain_market(order))
        rules = self._rules.get(key)
        if rules is None:
            rules = rules_that_can_refuse(view)
            if key[1]:
                rules = rules_for_plain_market(rules)
            self._rules[key] = rules
        result = check_order(order, view, rules)
        if result.violations:
            first = result.violations[0]
            order.transition(OrderStatus.REJECTED, now_ns, first.message)
            self.rejections.append(
                Rejection(
                    bar=bar,
                    ts_ns=now_ns,
                    order_id=order.order_id,
                    symbol=symbol,
                    side=side.value,
                    order_type=order.order_type.value,
                    qty=float(order.qty or ZERO),
                    reason=first.reason.value,
                    message=first.message,
                )
            )
            return False
        if cost:
            order.reserve(cost)
            self.reserved += cost
        return True

    def _quote_of(
        self, symbol: str, bid: Decimal | None, ask: Decimal | None, last: Decimal, now_ns: int
    ) -> Quote:
        """The quote risk would see at this tick: the one built for the last order, if unchanged.

        The built quote is its own cache key: its prices are the very objects it was
        built from (a side without a price is built as zero and is rebuilt each time).
        """
        known = self._quote.get(symbol)
        if (
            known is not None
            and known.ts_ns == now_ns
            and known.last is last
            and known.bid is bid
            and known.ask is ask
        ):
            return known
        quote = Quote(symbol, bid or ZERO, ask or ZERO, last, now_ns)
        self._quote[symbol] = quote
        return quote

    def on_fill(self, order: Order, fill: Fill) -> None:
        """Hand back the part of the order's reservation the fill used, as execution does."""
        held = order.reserved
        if not held:
            return
        if fill.order_status is _PARTIALLY_FILLED:
            assert order.qty is not None
            remaining_before = order.qty - fill.order_filled_qty + fill.qty
            released = released_reservation(held, fill.qty, remaining_before)
        else:
            released = held
        order.reserved = held - released
        self.reserved -= released

    def on_close(self, order: Order) -> None:
        """A canceled or expired order gives back what it still held."""
        self.reserved -= order.reserved
        order.reserved = ZERO

    def frame(self) -> pl.DataFrame:
        """The refused orders, in the order they were placed."""
        rows = self.rejections
        return pl.DataFrame(
            {
                "bar": [r.bar for r in rows],
                "time": pl.Series([r.ts_ns for r in rows], dtype=pl.Int64).cast(pl.Datetime("ns")),
                "order_id": [r.order_id for r in rows],
                "symbol": [r.symbol for r in rows],
                "side": [r.side for r in rows],
                "order_type": [r.order_type for r in rows],
                "qty": [r.qty for r in rows],
                "reason": [r.reason for r in rows],
                "message": [r.message for r in rows],
            },
            schema_overrides={
                "bar": pl.Int64,
                "order_id": pl.String,
                "symbol": pl.String,
                "side": pl.String,
                "order_type": pl.String,
                "qty": pl.Float64,
                "reason": pl.String,
                "message": pl.String,
            },
        )
