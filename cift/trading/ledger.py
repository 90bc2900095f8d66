"""Positions, cash, P&L and buying power: what a fill does to an account, to the cent.

Realized P&L uses the average-cost method. A position carries its signed quantity
and its cost basis (what the open shares cost; negative for a short, the proceeds
received). A fill that grows a position adds its amount to the cost basis. A fill
that shrinks a position removes cost in proportion to the shares closed,
`cost_basis * closed / |qty|` (all of it when the position closes), and realizes
the difference between that cost and what the closing shares were sold (or
bought back) for. A fill that crosses zero is split: the closing part realizes
against the old basis, the rest opens the new position at the fill price.

Cash moves by the fill's amount rounded to the cent (half up), less commission.
Cost basis and realized P&L are derived from those cent amounts, so for any
sequence of fills

    cash + sum(cost basis) - realized P&L + commissions == opening cash

holds exactly, not approximately (the property tests check it).

Buying power values positions at cost, not at the latest mark: it then changes only
with fills, which lets one conditional UPDATE on the account row reserve buying
power atomically (docs/DESIGN.md). It is `(cash + net cost) * margin_multiplier -
gross cost`: for a cash account (multiplier 1) holding only longs, that is simply
cash; a short uses up buying power equal to its size, as collateral.

This module is pure: no I/O, no prices decided here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from cift.runtime.errors import InvalidArgument
from cift.trading.money import average_price, to_cents
from cift.trading.orders import HUNDRED, Order
from cift.trading.vocabulary import ZERO, OrderType, Side

# Enum members read once: an enum class attribute costs far more than a global.
_BUY = Side.BUY
_LIMIT, _STOP_LIMIT = OrderType.LIMIT, OrderType.STOP_LIMIT
_STOP, _TRAILING_STOP = OrderType.STOP, OrderType.TRAILING_STOP


@dataclass(slots=True)
class Position:
    """A symbol's holding; a fill replaces it with a new one, never changes it.

    Not declared frozen: a frozen dataclass pays an `object.__setattr__` call per
    field when built, and every fill builds one.
    """

    symbol: str
    qty: Decimal = ZERO  # + long, - short
    cost_basis: Decimal = ZERO  # signed like qty, in cents

    @property
    def avg_entry_price(self) -> Decimal | None:
        if self.qty == 0:
            return None
        return average_price(self.cost_basis, self.qty)

    def market_value(self, mark: Decimal) -> Decimal:
        return to_cents(self.qty * mark)

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        return self.market_value(mark) - self.cost_basis


@dataclass(slots=True)
class FillEffect:
    """Everything one fill changes, as deltas the store can apply to the account row.

    Made once per fill and only read after: not frozen, since a frozen dataclass
    pays an `object.__setattr__` call per field, and a backtest settles a fill
    for every order it sends.
    """

    position: Position  # after the fill
    amount: Decimal  # qty * price in cents, unsigned
    cash_delta: Decimal
    realized_pnl: Decimal
    commission: Decimal
    net_cost_delta: Decimal  # change of sum(cost basis)
    gross_cost_delta: Decimal  # change of sum(|cost basis|)


def settle_fill(
    position: Position, side: Side, qty: Decimal, price: Decimal, commission: Decimal = ZERO
) -> FillEffect:
    """Apply one fill to a position by the average-cost method (see the module docstring)."""
    # Against ZERO, not 0: a Decimal compares with a Decimal without converting an int.
    if qty <= ZERO or price <= ZERO:
        raise InvalidArgument(f"A fill needs a positive quantity and price, not {qty} @ {price}.")
    if commission < ZERO:
        raise InvalidArgument("A commission cannot be negative.")
    buy = side is _BUY
    amount = to_cents(qty * price)
    held, cost = position.qty, position.cost_basis
    signed_qty = qty if buy else -qty
    realized = ZERO
    if not held or (held > ZERO) == buy:
        new_cost = cost + (amount if buy else -amount)
    else:
        size = abs(held)
        closing = qty if qty <= size else size  # min(qty, size), without the builtin's call
        closing_amount = amount if closing == qty else to_cents(amount * closing / qty)
        opening_amount = amount - closing_amount
        removed_cost = cost if closing == size else to_cents(cost * closing / size)
        closing_cash = -closing_amount if buy else closing_amount
        realized = closing_cash - removed_cost
        new_cost = cost - removed_cost + (opening_amount if buy else -opening_amount)
    return FillEffect(  # positional, in the field order: once per fill
        Position(position.symbol, held + signed_qty, new_cost),
        amount,
        (-amount if buy else amount) - commission,
        realized,
        commission,
        new_cost - cost,
        abs(new_cost) - abs(cost),
    )


def buying_power(
    cash: Decimal, net_cost: Decimal, gross_cost: Decimal, margin_multiplier: Decimal
) -> Decimal:
    """Buying power before reservations, positions at cost: the one place its formula lives.

    Execution stores the figure with the account row whenever cash or costs change,
    so its SQL reserves against the stored figure and never computes it.
    """
    power = (cash + net_cost) * margin_multiplier - gross_cost
    return power if power > ZERO else ZERO  # max(ZERO, power), without the builtin's call


@dataclass(frozen=True, slots=True)
class Balances:
    """The account-row figures buying power is made of, as a fill finds them."""

    cash: Decimal
    net_cost: Decimal
    gross_cost: Decimal
    margin_multiplier: Decimal

    @property
    def buying_power(self) -> Decimal:
        return buying_power(self.cash, self.net_cost, self.gross_cost, self.margin_multiplier)

    def after(self, effect: FillEffect) -> Balances:
        return Balances(
            self.cash + effect.cash_delta,
            self.net_cost + effect.net_cost_delta,
            self.gross_cost + effect.gross_cost_delta,
            self.margin_multiplier,
        )


@dataclass(slots=True)
class Ledger:
    """One account's cash and positions: the arithmetic behind the account row.

    `positions` changes only through `apply_fill`, which keeps the sums of the cost
    bases (`net_cost`, `gross_cost`) as running totals, the way the account row
    keeps them: the fill's deltas are exact cents, so the totals equal the sums
    over the positions exactly, and a pre-trade check reads them without a walk
    over every position.
    """

    cash: Decimal
    realized_pnl: Decimal = ZERO
    commissions: Decimal = ZERO
    positions: dict[str, Position] = field(default_factory=dict)
    _net_cost: Decimal = field(default=ZERO, init=False, repr=False, compare=False)
    _gross_cost: Decimal = field(default=ZERO, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._net_cost = sum((p.cost_basis for p in self.positions.values()), ZERO)
        self._gross_cost = sum((abs(p.cost_basis) for p in self.positions.values()), ZERO)

    @property
    def net_cost(self) -> Decimal:
        return self._net_cost

    @property
    def gross_cost(self) -> Decimal:
        return self._gross_cost

    def position(self, symbol: str) -> Position:
        return self.positions.get(symbol) or Position(symbol)

    def apply_fill(
        self, symbol: str, side: Side, qty: Decimal, price: Decimal, commission: Decimal = ZERO
    ) -> FillEffect:
        held = self.positions.get(symbol)
        effect = settle_fill(held or Position(symbol), side, qty, price, commission)
        self.positions[symbol] = effect.position
        self.cash += effect.cash_delta
        self.realized_pnl += effect.realized_pnl
        self.commissions += effect.commission
        self._net_cost += effect.net_cost_delta
        self._gross_cost += effect.gross_cost_delta
        return effect


def reservation_price(
    side: Side,
    order_type: OrderType,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
    trail_price: Decimal | None,
    trail_percent: Decimal | None,
    bid: Decimal | None,
    ask: Decimal | None,
) -> Decimal | None:
    """The price at which an order's buying power is reserved; None if no quote makes one.

    Limits reserve at their limit (they cannot fill worse). Market and stop orders
    reserve at the worse of the quote and the stop; a buy trailing stop at the ask
    plus its trail, where it would trigger today. Callers name the arguments; the
    order's own terms (`order_reservation_price`, once per order entered) pass them in
    this order.
    """
    if order_type is _LIMIT or order_type is _STOP_LIMIT:
        return limit_price
    buy = side is _BUY
    market = ask if buy else bid
    if order_type is _STOP:
        assert stop_price is not None
        if market is None:
            return stop_price
        return max(stop_price, market) if buy else min(stop_price, market)
    if order_type is _TRAILING_STOP and buy and market is not None:
        if trail_price is not None:
            return market + trail_price
        assert trail_percent is not None
        return market * (1 + trail_percent / HUNDRED)
    return market


def order_reservation_price(
    order: Order, bid: Decimal | None, ask: Decimal | None
) -> Decimal | None:
    """`reservation_price` on an order's own terms: live entry and the backtest gate price alike."""
    return reservation_price(
        order.side,
        order.order_type,
        order.limit_price,
        order.stop_price,
        order.trail_price,
        order.trail_percent,
        bid,
        ask,
    )


def reservation_for(
    side: Side,
    qty: Decimal | None,
    notional: Decimal | None,
    price: Decimal,
    position_qty: Decimal,
    open_qty_same_side: Decimal,
) -> Decimal:
    """Buying power an order must hold: only the part that opens or grows exposure.

    A sell against a long (or a buy against a short) reduces exposure and needs
    none, up to the shares not already promised to other open orders on that side.
    Callers name the arguments; the backtest's gate, once per order, passes them in
    this order.
    """
    if qty is None:
        assert notional is not None
        qty = notional / price
    reducible = -position_qty if side is _BUY else position_qty
    # max(ZERO, x) as comparisons, without the builtin's call: once per order entered.
    capacity = reducible - open_qty_same_side
    if capacity <= ZERO:
        capacity = ZERO
    exposure_qty = qty - capacity
    if exposure_qty <= ZERO:
        return ZERO
    if notional is not None and exposure_qty == qty:
        return to_cents(notional)
    return to_cents(exposure_qty * price)


def released_reservation(reserved: Decimal, filled: Decimal, remaining_before: Decimal) -> Decimal:
    """The share of an order's reservation a fill frees (all of it when the order completes)."""
    if filled >= remaining_before or remaining_before <= 0:
        return reserved
    return min(reserved, to_cents(reserved * filled / remaining_before))


@dataclass(frozen=True, slots=True)
class AccountFigures:
    cash: Decimal
    equity: Decimal
    long_market_value: Decimal
    short_market_value: Decimal  # negative, as brokers report it
    buying_power: Decimal  # after reservations for open orders
    reserved: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    last_equity: Decimal
    day_pnl: Decimal


def account_figures(
    *,
    cash: Decimal,
    positions: Iterable[Position],
    marks: Mapping[str, Decimal],
    reserved: Decimal,
    realized_pnl: Decimal,
    margin_multiplier: Decimal,
    last_equity: Decimal,
) -> AccountFigures:
    """The account as a trader reads it, marked to the latest prices in `marks`.

    A position without a mark is valued at its average entry price (zero unrealized
    P&L) rather than dropped, so equity never jumps because a quote is missing.
    """
    long_value = short_value = unrealized = net_cost = gross_cost = ZERO
    for position in positions:
        if position.qty == 0:
            continue
        mark = marks.get(position.symbol)
        value = position.cost_basis if mark is None else position.market_value(mark)
        if position.qty > 0:
            long_value += value
        else:
            short_value += value
        unrealized += value - position.cost_basis
        net_cost += position.cost_basis
        gross_cost += abs(position.cost_basis)
    equity = cash + long_value + short_value
    available = buying_power(cash, net_cost, gross_cost, margin_multiplier) - reserved
    return AccountFigures(
        cash=cash,
        equity=equity,
        long_market_value=long_value,
        short_market_value=short_value,
        buying_power=max(ZERO, available),
        reserved=reserved,
        realized_pnl=realized_pnl,
        unrealized_pnl=unrealized,
        last_equity=last_equity,
        day_pnl=equity - last_equity,
    )
