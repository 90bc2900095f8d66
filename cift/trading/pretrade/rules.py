"""Pre-trade rules: each a pure function from a check context to its violations.

A rule returns an empty list when the order passes it, otherwise one violation
per broken control, each with a machine-readable reason (clients branch on it)
and a sentence a trader can act on. Rules never raise for a bad order: the
caller sees every problem at once rather than one per attempt.

A rule that cannot judge (say, a size limit when no price is known) stays silent;
some other rule (here NO_FRESH_QUOTE) is responsible for rejecting that order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from cift.runtime.money import format_decimal, is_multiple_of
from cift.trading.money import dollars, to_places
from cift.trading.pretrade.order import CheckedOrder
from cift.trading.pretrade.quote import NS_PER_S, Quote
from cift.trading.pretrade.snapshot import ZERO, SnapshotView
from cift.trading.pretrade.trading_state import TradingState, reduces_position
from cift.trading.vocabulary import FRACTIONAL_QTY_INCREMENT, OrderType, Side, TimeInForce

HUNDRED = Decimal(100)
# Enum members read once: a class attribute lookup on an enum costs far more than a
# global's, and every rule of every check compares against them.
_BUY, _SELL = Side.BUY, Side.SELL
_MARKET, _LIMIT, _STOP = OrderType.MARKET, OrderType.LIMIT, OrderType.STOP
_STOP_LIMIT, _TRAILING_STOP = OrderType.STOP_LIMIT, OrderType.TRAILING_STOP
_ACTIVE, _REDUCING, _HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED


class Reason(StrEnum):
    KILL_SWITCH = "KILL_SWITCH"
    GLOBAL_REDUCING_ONLY = "GLOBAL_REDUCING_ONLY"
    ACCOUNT_HALTED = "ACCOUNT_HALTED"
    ACCOUNT_REDUCING_ONLY = "ACCOUNT_REDUCING_ONLY"
    UNKNOWN_INSTRUMENT = "UNKNOWN_INSTRUMENT"
    INSTRUMENT_NOT_TRADABLE = "INSTRUMENT_NOT_TRADABLE"
    INSTRUMENT_HALTED = "INSTRUMENT_HALTED"
    NOT_SHORTABLE = "NOT_SHORTABLE"
    SHORT_NOT_ALLOWED = "SHORT_NOT_ALLOWED"
    QUANTITY_REQUIRED = "QUANTITY_REQUIRED"
    NON_POSITIVE_QUANTITY = "NON_POSITIVE_QUANTITY"
    LOT_SIZE = "LOT_SIZE"
    MISSING_PRICE = "MISSING_PRICE"
    PRICE_NOT_ALLOWED = "PRICE_NOT_ALLOWED"
    NON_POSITIVE_PRICE = "NON_POSITIVE_PRICE"
    OFF_TICK_GRID = "OFF_TICK_GRID"
    NOTIONAL_NOT_ALLOWED = "NOTIONAL_NOT_ALLOWED"
    PRICE_COLLAR = "PRICE_COLLAR"
    NO_FRESH_QUOTE = "NO_FRESH_QUOTE"
    MAX_ORDER_QTY = "MAX_ORDER_QTY"
    MAX_ORDER_NOTIONAL = "MAX_ORDER_NOTIONAL"
    MAX_POSITION_QTY = "MAX_POSITION_QTY"
    MAX_POSITION_NOTIONAL = "MAX_POSITION_NOTIONAL"
    MAX_GROSS_EXPOSURE = "MAX_GROSS_EXPOSURE"
    MAX_OPEN_ORDERS = "MAX_OPEN_ORDERS"
    INSUFFICIENT_BUYING_POWER = "INSUFFICIENT_BUYING_POWER"
    RATE_LIMITED = "RATE_LIMITED"


@dataclass(frozen=True, slots=True)
class Violation:
    reason: Reason
    message: str


def _fmt(value: Decimal) -> str:
    return format_decimal(value)


def _usd(value: Decimal) -> str:
    return dollars(value)


@dataclass(slots=True)
class CheckContext:
    """An order, its snapshot, and the estimates several rules share (computed once).

    Built once per check and only read by the rules. Not frozen: a frozen
    dataclass pays an `object.__setattr__` call per field on construction, which
    made building this the dearest step of a check that usually passes.
    """

    order: CheckedOrder
    snap: SnapshotView
    fresh_quote: Quote | None
    # The price the order is expected to trade at (worst case for limits and stops).
    price: Decimal | None
    # Shares: as sent, or notional / price for a notional order.
    qty: Decimal | None
    notional: Decimal | None
    # Worst-case signed position in the symbol before and after this order: every
    # resting order on the same side is assumed to fill first.
    position_before: Decimal
    position_after: Decimal | None

    @classmethod
    def of(cls, order: CheckedOrder, snap: SnapshotView) -> CheckContext:
        quote = snap.quote
        if quote is not None:
            # Quote.age_s, without its division when the quote is from this very instant.
            age_ns = snap.now_ns - quote.ts_ns
            age = Decimal(age_ns) / NS_PER_S if age_ns > 0 else ZERO
            if age > snap.limits.max_quote_age_s:
                quote = None
        price = _expected_price(order, quote)
        qty: Decimal | None = None
        notional: Decimal | None = None
        order_qty = order.qty
        if order_qty is not None and order_qty > ZERO:
            qty = order_qty
            notional = qty * price if price is not None else None
        elif order.notional is not None and order.notional > ZERO:
            notional = order.notional
            qty = notional / price if price is not None else None
        if order.side is _BUY:
            before = snap.position_qty + snap.open_buy_qty
            after = before + qty if qty is not None else None
        else:
            before = snap.position_qty - snap.open_sell_qty
            after = before - qty if qty is not None else None
        return cls(order, snap, quote, price, qty, notional, before, after)

    @property
    def increases_exposure(self) -> bool:
        return self.position_after is not None and abs(self.position_after) > abs(
            self.position_before
        )

    @property
    def reduces(self) -> bool:
        side = self.order.side
        open_same = self.snap.open_buy_qty if side is _BUY else self.snap.open_sell_qty
        return reduces_position(side, self.qty, self.snap.position_qty, open_same)

    @property
    def order_cost(self) -> Decimal | None:
        """Buying power the order would consume if it filled at the expected price.

        When the caller sent the cost it will reserve, that figure is the cost. Else a buy costs its whole notional; covering a short does not free buying power
        before the fill. A sell costs only the part that opens or grows a short.
        """
        if self.snap.caller_order_cost is not None:
            return self.snap.caller_order_cost
        if self.price is None or self.notional is None or self.position_after is None:
            return None
        if self.order.side is _BUY:
            return self.notional
        short_before = max(ZERO, -self.position_before)
        short_after = max(ZERO, -self.position_after)
        return (short_after - short_before) * self.price


def _expected_price(order: CheckedOrder, quote: Quote | None) -> Decimal | None:
    kind = order.order_type
    if kind is _LIMIT or kind is _STOP_LIMIT:
        return (
            order.limit_price if order.limit_price is not None and order.limit_price > 0 else None
        )
    if kind is _STOP:
        return order.stop_price if order.stop_price is not None and order.stop_price > 0 else None
    return quote.marketable_price(order.side) if quote is not None else None


Rule = Callable[[CheckContext], list[Violation]]


def check_trading_state(ctx: CheckContext) -> list[Violation]:
    """Kill switch, account halt, and reduce-only modes (global and per account)."""
    snap = ctx.snap
    if snap.venue_state is _ACTIVE and snap.account_state is _ACTIVE:
        return []  # neither halted nor reduce-only: whether the order reduces is moot
    if snap.venue_state is TradingState.HALTED:
        return [
            Violation(
                Reason.KILL_SWITCH,
                "The risk desk has halted all trading (kill switch); no new orders are accepted.",
            )
        ]
    if snap.account_state is TradingState.HALTED:
        return [
            Violation(
                Reason.ACCOUNT_HALTED,
                "Trading is halted on this account; no new orders are accepted.",
            )
        ]
    if ctx.reduces:
        return []
    action = "buy" if ctx.order.side is Side.BUY else "sell"
    what = f"This {action} of {ctx.order.symbol} would open or increase a position"
    if snap.venue_state is TradingState.REDUCING:
        return [
            Violation(
                Reason.GLOBAL_REDUCING_ONLY,
                f"All accounts may only reduce existing positions right now. {what}.",
            )
        ]
    if snap.account_state is TradingState.REDUCING:
        return [
            Violation(
                Reason.ACCOUNT_REDUCING_ONLY,
                f"This account may only reduce existing positions. {what}.",
            )
        ]
    return []


def check_instrument(ctx: CheckContext) -> list[Violation]:
    instrument = ctx.snap.instrument
    symbol = ctx.order.symbol
    if instrument is None:
        return [Violation(Reason.UNKNOWN_INSTRUMENT, f"{symbol!r} is not a known instrument.")]
    found: list[Violation] = []
    if not instrument.tradable:
        found.append(Violation(Reason.INSTRUMENT_NOT_TRADABLE, f"{symbol} is not tradable here."))
    if instrument.halted:
        found.append(
            Violation(
                Reason.INSTRUMENT_HALTED,
                f"Trading in {symbol} is halted; try again when it resumes.",
            )
        )
    return found


def check_shortable(ctx: CheckContext) -> list[Violation]:
    """A sell that opens or grows a short needs a borrowable instrument and an account allowed to short."""
    instrument = ctx.snap.instrument
    allowed_here = instrument is None or instrument.shortable
    if ctx.order.side is not _SELL or (allowed_here and ctx.snap.limits.allow_short):
        return []
    if ctx.position_after is not None:
        opens_short = ctx.position_after < 0 and ctx.position_after < min(ctx.position_before, ZERO)
    else:
        # Unknown size: any sell opens a short when nothing long is left to sell.
        opens_short = ctx.position_before <= 0
    if not opens_short:
        return []
    held = "you may sell at most the shares you hold that no other open sell order already covers"
    found: list[Violation] = []
    if not allowed_here:
        found.append(
            Violation(Reason.NOT_SHORTABLE, f"{ctx.order.symbol} cannot be sold short; {held}.")
        )
    if not ctx.snap.limits.allow_short:
        found.append(
            Violation(Reason.SHORT_NOT_ALLOWED, f"This account may not sell short; {held}.")
        )
    return found


def check_quantity(ctx: CheckContext) -> list[Violation]:
    order = ctx.order
    qty, notional = order.qty, order.notional  # read once: every order passes here
    if qty is None and notional is None:
        return [
            Violation(
                Reason.QUANTITY_REQUIRED, "Send a quantity (qty) or a dollar amount (notional)."
            )
        ]
    if qty is not None and notional is not None:
        return [Violation(Reason.NOTIONAL_NOT_ALLOWED, "Send either qty or notional, not both.")]
    if qty is not None and qty <= ZERO:
        return [
            Violation(
                Reason.NON_POSITIVE_QUANTITY,
                f"Quantity must be greater than zero (got {_fmt(qty)}).",
            )
        ]
    if notional is not None and notional <= ZERO:
        return [
            Violation(
                Reason.NON_POSITIVE_QUANTITY,
                f"Notional must be greater than zero (got {_fmt(notional)}).",
            )
        ]
    return []


def check_lot_size(ctx: CheckContext) -> list[Violation]:
    instrument = ctx.snap.instrument
    qty = ctx.order.qty
    if (
        instrument is None
        or qty is None
        or qty <= ZERO
        or is_multiple_of(qty, instrument.qty_increment)
    ):
        return []
    if instrument.fractionable and instrument.qty_increment == FRACTIONAL_QTY_INCREMENT:
        message = f"{ctx.order.symbol} quantities allow at most 9 decimal places (got {_fmt(qty)})."
    elif instrument.fractionable:
        # Market data named a coarser step (its minimum order size).
        message = (
            f"{ctx.order.symbol} trades in steps of {_fmt(instrument.qty_increment)} shares; "
            f"{_fmt(qty)} is not a multiple of the step."
        )
    elif instrument.lot_size == 1:
        message = f"{ctx.order.symbol} trades in whole shares only (got {_fmt(qty)})."
    else:
        message = (
            f"{ctx.order.symbol} trades in lots of {_fmt(instrument.lot_size)} shares; "
            f"{_fmt(qty)} is not a multiple of the lot size."
        )
    return [Violation(Reason.LOT_SIZE, message)]


def check_prices(ctx: CheckContext) -> list[Violation]:
    """The prices each order type needs are present and positive, and no others are sent."""
    order = ctx.order
    if _prices_plainly_right(order):
        return []
    kind = order.order_type.value.replace("_", " ")
    found: list[Violation] = []
    prices = {"limit_price": order.limit_price, "stop_price": order.stop_price}
    needed = {
        "limit_price": order.order_type.needs_limit_price,
        "stop_price": order.order_type.needs_stop_price,
    }
    for name, value in prices.items():
        if needed[name] and value is None:
            found.append(Violation(Reason.MISSING_PRICE, f"A {kind} order needs a {name}."))
        elif not needed[name] and value is not None:
            found.append(
                Violation(Reason.PRICE_NOT_ALLOWED, f"A {kind} order takes no {name}; remove it.")
            )
        elif value is not None and value <= 0:
            found.append(
                Violation(
                    Reason.NON_POSITIVE_PRICE,
                    f"{name} must be greater than zero (got {_fmt(value)}).",
                )
            )
    trails = [t for t in (order.trail_price, order.trail_percent) if t is not None]
    if order.order_type is OrderType.TRAILING_STOP:
        if len(trails) != 1:
            found.append(
                Violation(
                    Reason.MISSING_PRICE,
                    "A trailing stop needs exactly one of trail_price or trail_percent.",
                )
            )
        elif order.trail_price is not None and order.trail_price <= 0:
            found.append(
                Violation(
                    Reason.NON_POSITIVE_PRICE,
                    f"trail_price must be greater than zero (got {_fmt(order.trail_price)}).",
                )
            )
        elif order.trail_percent is not None and not ZERO < order.trail_percent < HUNDRED:
            found.append(
                Violation(
                    Reason.NON_POSITIVE_PRICE,
                    f"trail_percent must be between 0 and 100, exclusive (got {_fmt(order.trail_percent)}).",
                )
            )
    elif trails:
        found.append(
            Violation(
                Reason.PRICE_NOT_ALLOWED,
                f"Only trailing stops take a trail; a {kind} order does not.",
            )
        )
    return found


def _prices_plainly_right(order: CheckedOrder) -> bool:
    """The common shapes that `check_prices` passes, recognised without building its messages."""
    if order.trail_price is not None or order.trail_percent is not None:
        return False  # trailing stops (and stray trails) take the full check
    kind, limit, stop = order.order_type, order.limit_price, order.stop_price
    if kind is _MARKET:
        return limit is None and stop is None
    if kind is _LIMIT:
        return stop is None and limit is not None and limit > 0
    if kind is _STOP:
        return limit is None and stop is not None and stop > 0
    return False


def check_tick_grid(ctx: CheckContext) -> list[Violation]:
    instrument = ctx.snap.instrument
    if instrument is None:
        return []
    order = ctx.order
    if order.limit_price is None and order.stop_price is None and order.trail_price is None:
        return []
    found: list[Violation] = []
    for name, value in (
        ("limit_price", order.limit_price),
        ("stop_price", order.stop_price),
        ("trail_price", order.trail_price),
    ):
        if value is not None and value > 0 and not is_multiple_of(value, instrument.tick_size):
            found.append(
                Violation(
                    Reason.OFF_TICK_GRID,
                    f"{name} {_fmt(value)} is not a multiple of {order.symbol}'s tick size "
                    f"{_fmt(instrument.tick_size)}.",
                )
            )
    return found


def check_notional_allowed(ctx: CheckContext) -> list[Violation]:
    """Dollar-amount orders: market, day, fractionable instruments, and allowed for the account."""
    order = ctx.order
    if order.notional is None or order.qty is not None:
        return []
    problems: list[str] = []
    if order.order_type is not OrderType.MARKET:
        problems.append("only market orders may be sent as a dollar amount")
    if order.time_in_force is not TimeInForce.DAY:
        problems.append("dollar-amount orders must be day orders")
    instrument = ctx.snap.instrument
    if instrument is not None and not instrument.fractionable:
        problems.append(f"{order.symbol} does not trade in fractional shares")
    if not ctx.snap.limits.allow_notional_orders:
        problems.append("dollar-amount orders are disabled for this account")
    if not problems:
        return []
    text = "; ".join(problems)
    return [
        Violation(
            Reason.NOTIONAL_NOT_ALLOWED, f"{text[0].upper()}{text[1:]}. Send a quantity instead."
        )
    ]


def check_price_collar(ctx: CheckContext) -> list[Violation]:
    """A limit or stop price far from the market is probably a fat finger.

    Centred on the quote's reference price (mid, else last), so the band is the same
    width above and below. Without a fresh quote there is nothing to compare with.
    """
    quote = ctx.fresh_quote
    if quote is None or (ctx.order.limit_price is None and ctx.order.stop_price is None):
        return []
    reference = quote.reference_price
    if reference is None:
        return []
    pct = ctx.snap.limits.price_collar_pct
    band = reference * pct / HUNDRED
    found: list[Violation] = []
    for name, value in (
        ("limit_price", ctx.order.limit_price),
        ("stop_price", ctx.order.stop_price),
    ):
        if value is not None and value > 0 and abs(value - reference) > band:
            found.append(
                Violation(
                    Reason.PRICE_COLLAR,
                    f"{name} {_fmt(value)} is more than {_fmt(pct)}% away from {ctx.order.symbol}'s "
                    f"market price {_fmt(to_places(reference, 4))}; check the price.",
                )
            )
    return found


def check_fresh_quote(ctx: CheckContext) -> list[Violation]:
    """Orders priced by the market (market, trailing stop) need a current quote."""
    kind = ctx.order.order_type
    if kind is not _MARKET and kind is not _TRAILING_STOP:
        return []
    if ctx.fresh_quote is not None and ctx.price is not None:
        return []
    age = _fmt(ctx.snap.limits.max_quote_age_s)
    return [
        Violation(
            Reason.NO_FRESH_QUOTE,
            f"There is no quote for {ctx.order.symbol} from the last {age} s, so a "
            f"{ctx.order.order_type.value.replace('_', ' ')} order cannot be priced; use a limit order.",
        )
    ]


def check_order_size(ctx: CheckContext) -> list[Violation]:
    limits = ctx.snap.limits
    found: list[Violation] = []
    if ctx.qty is not None and ctx.qty > limits.max_order_qty:
        found.append(
            Violation(
                Reason.MAX_ORDER_QTY,
                f"Order quantity {_fmt(to_places(ctx.qty, 9))} exceeds the "
                f"{_fmt(limits.max_order_qty)}-share limit per order.",
            )
        )
    if ctx.notional is not None and ctx.notional > limits.max_order_notional:
        found.append(
            Violation(
                Reason.MAX_ORDER_NOTIONAL,
                f"Order value {_usd(ctx.notional)} exceeds the {_usd(limits.max_order_notional)} limit per order.",
            )
        )
    return found


def check_position_limits(ctx: CheckContext) -> list[Violation]:
    """Counting resting orders on the same side, the position may not grow past its limits.

    An order that shrinks the worst-case position always passes, even when the
    position is already over a limit lowered since it was built.
    """
    after = ctx.position_after
    if after is None:
        return []
    size = abs(after)
    if size <= abs(ctx.position_before):  # `not ctx.increases_exposure`, its abs kept
        return []
    limits = ctx.snap.limits
    found: list[Violation] = []
    if size > limits.max_position_qty:
        found.append(
            Violation(
                Reason.MAX_POSITION_QTY,
                f"This order could take your {ctx.order.symbol} position to {_fmt(size)} shares "
                f"(with your open orders), over the {_fmt(limits.max_position_qty)}-share limit.",
            )
        )
    if ctx.price is not None and size * ctx.price > limits.max_position_notional:
        found.append(
            Violation(
                Reason.MAX_POSITION_NOTIONAL,
                f"This order could take your {ctx.order.symbol} position to {_usd(size * ctx.price)} "
                f"(with your open orders), over the {_usd(limits.max_position_notional)} limit.",
            )
        )
    return found


def check_gross_exposure(ctx: CheckContext) -> list[Violation]:
    price, after = ctx.price, ctx.position_after
    if price is None or after is None:
        return []
    size_after, size_before = abs(after), abs(ctx.position_before)
    if size_after <= size_before:  # `not ctx.increases_exposure`, its abs kept for `added`
        return []
    added = (size_after - size_before) * price
    gross_after = ctx.snap.gross_exposure + added
    limit = ctx.snap.limits.max_gross_exposure
    if gross_after <= limit:
        return []
    return [
        Violation(
            Reason.MAX_GROSS_EXPOSURE,
            f"This order would raise the account's gross exposure to {_usd(gross_after)}, "
            f"over the {_usd(limit)} limit.",
        )
    ]


def check_open_orders(ctx: CheckContext) -> list[Violation]:
    limit = ctx.snap.limits.max_open_orders
    if ctx.snap.open_order_count < limit:
        return []
    return [
        Violation(
            Reason.MAX_OPEN_ORDERS,
            f"The account already has {ctx.snap.open_order_count} open orders, the most allowed "
            f"({limit}); cancel some first.",
        )
    ]


def check_buying_power(ctx: CheckContext) -> list[Violation]:
    cost = ctx.order_cost
    available = ctx.snap.buying_power
    if cost is None or cost <= available:
        return []
    return [
        Violation(
            Reason.INSUFFICIENT_BUYING_POWER,
            f"This order needs {_usd(cost)} of buying power; {_usd(max(available, ZERO))} is available.",
        )
    ]


def check_rate(ctx: CheckContext) -> list[Violation]:
    rate = ctx.snap.rate
    if rate is None or rate.allowed:
        return []
    wait_ms = max(1, -(-rate.retry_after_us // 1000))
    return [
        Violation(
            Reason.RATE_LIMITED,
            f"Too many orders: this account may send {_fmt(ctx.snap.limits.orders_per_second)} per second "
            f"(bursts of {ctx.snap.limits.order_burst}); retry in {wait_ms} ms.",
        )
    ]


ALL_RULES: tuple[Rule, ...] = (
    check_trading_state,
    check_instrument,
    check_quantity,
    check_lot_size,
    check_prices,
    check_tick_grid,
    check_notional_allowed,
    check_shortable,
    check_fresh_quote,
    check_price_collar,
    check_order_size,
    check_position_limits,
    check_gross_exposure,
    check_open_orders,
    check_buying_power,
    check_rate,
)
