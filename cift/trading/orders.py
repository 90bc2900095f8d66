"""Orders: what a trader may ask for, and the lifecycle every order follows.

This module decides whether an order request is well formed for an instrument, and
owns the one state machine through which an order's status changes. It never does
I/O and never decides prices (that is `fills.py`); a status changes only through
`Order.transition` or `Order.record_fill`, which refuse illegal moves with
FAILED_PRECONDITION.

Lifecycle (Alpaca's statuses, ordered as the product defines them):

    new ──► accepted ──► partially_filled ──► filled
     │  │       ▲  │                │
     │  └─► held┘  └────────────────┴──► canceled / expired / replaced
     ▼       └────────────────────────► canceled / expired / replaced
  rejected

`held` is an exit leg of a bracket or OTO order waiting for its entry to fill
(`contingent.py` releases it).

`new` is an order that passed validation but not yet risk and the buying-power
reservation; `accepted` is live in the book. Alpaca reports `accepted` before
`new` (its `new` means "routed to the exchange"); a paper broker has no routing
step, so we keep the order the issue prescribes. Alpaca's pending_* states do not
exist here: cancel and replace complete synchronously in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from cift.runtime.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from cift.runtime.money import format_decimal, is_multiple_of
from cift.trading.money import average_price
from cift.trading.vocabulary import ZERO, Instrument, OrderType, Side, TimeInForce

HUNDRED = Decimal(100)
MAX_CLIENT_ORDER_ID_LEN = 128  # Alpaca's limit, so client code written for it fits.


AUCTION_TIFS = frozenset({TimeInForce.OPG, TimeInForce.CLS})


class OrderClass(StrEnum):
    """Alone, or one order of a contingent group (order_classes.py, contingent.py)."""

    SIMPLE = "simple"
    BRACKET = "bracket"
    OCO = "oco"
    OTO = "oto"


class OrderStatus(StrEnum):
    NEW = "new"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"
    REPLACED = "replaced"
    HELD = "held"


OPEN_STATUSES = frozenset(
    {OrderStatus.NEW, OrderStatus.HELD, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED}
)
TERMINAL_STATUSES = frozenset(set(OrderStatus) - OPEN_STATUSES)

# The whole state machine. A fill may follow a fill, hence the self-loop on
# partially_filled; nothing leaves a terminal status.
ALLOWED_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.NEW: frozenset({OrderStatus.ACCEPTED, OrderStatus.HELD, OrderStatus.REJECTED}),
    OrderStatus.HELD: frozenset(
        {OrderStatus.ACCEPTED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REPLACED}
    ),
    OrderStatus.ACCEPTED: frozenset(
        {
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELED,
            OrderStatus.EXPIRED,
            OrderStatus.REPLACED,
        }
    ),
    OrderStatus.PARTIALLY_FILLED: frozenset(
        {
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELED,
            OrderStatus.EXPIRED,
            OrderStatus.REPLACED,
        }
    ),
    **{status: frozenset() for status in TERMINAL_STATUSES},
}

# Read once: an enum class attribute costs far more than a global (one fill each).
_NEW, _FILLED, _PARTIALLY_FILLED = OrderStatus.NEW, OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED

_VERB = {
    OrderStatus.ACCEPTED: "accepted",
    OrderStatus.PARTIALLY_FILLED: "filled",
    OrderStatus.FILLED: "filled",
    OrderStatus.CANCELED: "canceled",
    OrderStatus.EXPIRED: "expired",
    OrderStatus.REJECTED: "rejected",
    OrderStatus.REPLACED: "replaced",
    OrderStatus.NEW: "reopened",
    OrderStatus.HELD: "held",
}


@dataclass(frozen=True, slots=True)
class OrderTerms:
    """What an order asks for: exactly one of `qty` (shares) or `notional` (dollars).

    Shared by the order a trader submits (`OrderRequest`) and the one risk checks
    (`cift.trading.pretrade.order.OrderToCheck`), so both read the same fields.
    """

    symbol: str
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce = TimeInForce.DAY
    qty: Decimal | None = None
    notional: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None


@dataclass(frozen=True, slots=True)
class OrderRequest(OrderTerms):
    """An order as the trader asked for it, already decoded from the wire."""

    client_order_id: str = ""
    expire_ns: int | None = None  # time_in_force gtd only
    extended_hours: bool = False  # limit day orders only


@dataclass(frozen=True, slots=True)
class ReplaceRequest:
    """The fields a replace (PATCH) may change; None keeps the original's value.

    `qty` is the successor's whole quantity. The original keeps what it already
    filled, so the default is the original's unfilled remainder. Alpaca does not
    let a replace change side, type or symbol, and neither do we.
    """

    qty: Decimal | None = None
    time_in_force: TimeInForce | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None
    client_order_id: str = ""


@dataclass(slots=True)
class Order:
    """One order and its fill progress; mutated only through its methods."""

    order_id: str
    account_id: str
    symbol: str
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    qty: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    trail_price: Decimal | None
    trail_percent: Decimal | None
    client_order_id: str
    created_ns: int
    status: OrderStatus = OrderStatus.NEW
    updated_ns: int = 0
    filled_qty: Decimal = ZERO
    filled_notional: Decimal = ZERO  # exact sum of qty * price over fills
    fill_count: int = 0
    triggered: bool = False  # a stop, stop-limit or trailing stop whose trigger fired
    reserved: Decimal = ZERO  # buying power still held for the unfilled part
    replaces: str | None = None
    replaced_by: str | None = None
    reason: str = ""  # why it was rejected, canceled or expired
    water_mark: Decimal | None = None  # trailing stops: high (sell) / low (buy) water mark
    expire_ns: int | None = None  # time_in_force gtd: when it expires
    extended_hours: bool = False
    order_class: OrderClass = OrderClass.SIMPLE
    parent_id: str | None = None  # a leg's parent (bracket entry, OCO take-profit)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining_qty(self) -> Decimal | None:
        """Shares still to fill; None for a notional order (its size is in dollars)."""
        return None if self.qty is None else self.qty - self.filled_qty

    @property
    def remaining_notional(self) -> Decimal | None:
        return None if self.notional is None else self.notional - self.filled_notional

    @property
    def filled_avg_price(self) -> Decimal | None:
        if self.filled_qty == 0:
            return None
        return average_price(self.filled_notional, self.filled_qty)

    def request(self) -> OrderRequest:
        return OrderRequest(
            symbol=self.symbol,
            side=self.side,
            order_type=self.order_type,
            time_in_force=self.time_in_force,
            qty=self.qty,
            notional=self.notional,
            limit_price=self.limit_price,
            stop_price=self.stop_price,
            trail_price=self.trail_price,
            trail_percent=self.trail_percent,
            client_order_id=self.client_order_id,
            expire_ns=self.expire_ns,
            extended_hours=self.extended_hours,
        )

    def transition(self, to: OrderStatus, now_ns: int, reason: str = "") -> None:
        """Move to `to`, or refuse with FAILED_PRECONDITION if the lifecycle forbids it."""
        if to not in ALLOWED_TRANSITIONS[self.status]:
            raise FailedPrecondition(
                f"Order {self.order_id} is {self.status.value}, so it cannot be {_VERB[to]}."
            )
        self.status = to
        self.updated_ns = now_ns
        if reason:
            self.reason = reason

    def reserve(self, amount: Decimal) -> None:
        """Hold `amount` of buying power for the order; only before it goes live.

        The ledger computes the figure (`ledger.order_reservation`); the order only
        remembers it, so a cancel or fill releases exactly what was held.
        """
        if self.status is not _NEW:
            raise FailedPrecondition(
                f"Order {self.order_id} is {self.status.value}; only a new order reserves."
            )
        if amount < ZERO:
            raise InvalidArgument(f"A reservation cannot be negative, not {amount}.")
        self.reserved = amount

    def accept(self, now_ns: int) -> None:
        """Go live in the book, having passed risk and reserved buying power."""
        self.transition(OrderStatus.ACCEPTED, now_ns)

    def close(self, to: OrderStatus, now_ns: int, reason: str = "") -> Decimal:
        """End the order (canceled, expired, rejected, replaced, filled); returns the
        buying power it still held, which the caller hands back to the account."""
        if to not in TERMINAL_STATUSES:
            raise ValueError(f"{to.value} is not a terminal status")
        self.transition(to, now_ns, reason)
        released, self.reserved = self.reserved, ZERO
        return released

    def replace_by(self, successor_id: str, now_ns: int) -> Decimal:
        """Close as replaced by `successor_id`; returns the reservation released."""
        released = self.close(OrderStatus.REPLACED, now_ns, "replaced")
        self.replaced_by = successor_id
        return released

    def apply_fill(
        self,
        status: OrderStatus,
        filled_qty: Decimal,
        filled_notional: Decimal,
        fill_count: int,
        now_ns: int,
        released: Decimal,
    ) -> None:
        """Take the fill engine's totals after one fill, as stored beside the order.

        The engine counted the fill on its own copy (`record_fill`); a stored copy
        read back in the fill's transaction takes the same totals here, so both
        agree, and gives back `released` of its reservation.
        """
        if filled_qty < self.filled_qty or fill_count <= self.fill_count:
            raise FailedPrecondition(
                f"Order {self.order_id} already counts {self.fill_count} fills; "
                f"a fill cannot take it back to {fill_count}."
            )
        self.transition(status, now_ns)
        self.filled_qty = filled_qty
        self.filled_notional = filled_notional
        self.fill_count = fill_count
        self.reserved = max(ZERO, self.reserved - released)

    def hold(self, now_ns: int) -> None:
        """Wait, as an exit leg, for the entry it belongs to (contingent.py releases it)."""
        self.transition(OrderStatus.HELD, now_ns)

    def trigger(self, water_mark: Decimal | None = None) -> None:
        """A stop's trigger fired: from now on it works as a market or limit order."""
        self.triggered = True
        if water_mark is not None:
            self.water_mark = water_mark

    def release(self, qty: Decimal, now_ns: int) -> None:
        """A held exit leg goes to work for `qty`, what its entry has filled so far."""
        self.qty = qty
        self.transition(OrderStatus.ACCEPTED, now_ns)

    def grow(self, qty: Decimal) -> None:
        """A working exit leg covers `qty` more, as its entry fills further."""
        if self.qty is None or qty <= 0:
            raise FailedPrecondition(f"Order {self.order_id} cannot grow by {qty}.")
        self.qty += qty

    def record_fill(
        self, qty: Decimal, price: Decimal, now_ns: int, completes: bool = False
    ) -> None:
        """Count a fill; the status follows from what remains.

        `completes` closes a notional order whose remaining dollars no longer buy
        one quantity increment (its share count is only known as it fills).
        """
        if qty <= ZERO or price <= ZERO:  # ZERO, not 0: no int to convert per fill
            raise InvalidArgument(
                f"A fill needs a positive quantity and price, not {qty} @ {price}."
            )
        remaining = self.remaining_qty
        if remaining is not None and qty > remaining:
            raise FailedPrecondition(
                f"Order {self.order_id} has {format_decimal(remaining)} left to fill, "
                f"not {format_decimal(qty)}."
            )
        done = completes if remaining is None else qty == remaining
        self.transition(_FILLED if done else _PARTIALLY_FILLED, now_ns)
        self.filled_qty += qty
        self.filled_notional += qty * price
        self.fill_count += 1


def _require_positive(field_name: str, value: Decimal | None) -> Decimal:
    if value is None:
        raise InvalidArgument(f"{field_name} is required for this order type.")
    if not value.is_finite() or value <= 0:
        raise InvalidArgument(f"{field_name} must be a positive number, not {value}.")
    return value


def _require_absent(field_name: str, value: Decimal | None, order_type: OrderType) -> None:
    if value is not None:
        raise InvalidArgument(
            f"{field_name} does not apply to {order_type.value} orders; leave it empty."
        )


def _require_on_tick(field_name: str, price: Decimal, instrument: Instrument) -> None:
    if not is_multiple_of(price, instrument.tick_size):
        raise InvalidArgument(
            f"{field_name} {format_decimal(price)} is not on {instrument.symbol}'s tick grid of "
            f"{format_decimal(instrument.tick_size)}."
        )


def validate_quantity(qty: Decimal, instrument: Instrument) -> None:
    """Shares must be positive, whole unless the instrument is fractionable, and on its grid."""
    _require_positive("qty", qty)
    if not instrument.fractionable and qty != qty.to_integral_value():
        raise InvalidArgument(
            f"{instrument.symbol} does not trade in fractional shares; send a whole quantity, "
            f"not {format_decimal(qty)}."
        )
    if not is_multiple_of(qty, instrument.qty_increment):
        raise InvalidArgument(
            f"qty {format_decimal(qty)} is not a multiple of {instrument.symbol}'s quantity "
            f"increment {format_decimal(instrument.qty_increment)}."
        )


def validate_order_request(request: OrderRequest, instrument: Instrument) -> None:
    """Refuse with INVALID_ARGUMENT anything a broker would bounce at the door."""
    if request.symbol != instrument.symbol:
        raise InvalidArgument(
            f"Instrument {instrument.symbol} does not match symbol {request.symbol}."
        )
    if not instrument.tradable:
        raise InvalidArgument(f"{instrument.symbol} is not tradable.")
    if len(request.client_order_id) > MAX_CLIENT_ORDER_ID_LEN:
        raise InvalidArgument(
            f"client_order_id may be at most {MAX_CLIENT_ORDER_ID_LEN} characters long."
        )
    if request.client_order_id and not request.client_order_id.isprintable():
        raise InvalidArgument("client_order_id must contain printable characters only.")

    kind = request.order_type
    if (request.qty is None) == (request.notional is None):
        raise InvalidArgument("Send exactly one of qty (shares) or notional (dollars).")
    if request.notional is not None:
        # Alpaca's rules for dollar orders: market, day, fractionable instruments.
        if kind is not OrderType.MARKET:
            raise InvalidArgument(
                f"notional is only accepted for market orders; a {kind.value} order needs qty."
            )
        _require_positive("notional", request.notional)
        if request.time_in_force is not TimeInForce.DAY:
            raise InvalidArgument("Notional orders must use time_in_force day.")
        if not instrument.fractionable:
            raise InvalidArgument(
                f"{instrument.symbol} does not trade in fractional shares, so it cannot be "
                "bought by notional; send qty."
            )
    else:
        assert request.qty is not None
        validate_quantity(request.qty, instrument)

    needs_limit = kind in (OrderType.LIMIT, OrderType.STOP_LIMIT)
    needs_stop = kind in (OrderType.STOP, OrderType.STOP_LIMIT)
    if needs_limit:
        _require_on_tick(
            "limit_price", _require_positive("limit_price", request.limit_price), instrument
        )
    else:
        _require_absent("limit_price", request.limit_price, kind)
    if needs_stop:
        _require_on_tick(
            "stop_price", _require_positive("stop_price", request.stop_price), instrument
        )
    else:
        _require_absent("stop_price", request.stop_price, kind)

    if kind is OrderType.TRAILING_STOP:
        if (request.trail_price is None) == (request.trail_percent is None):
            raise InvalidArgument(
                "A trailing stop needs exactly one of trail_price or trail_percent."
            )
        if request.trail_price is not None:
            _require_on_tick(
                "trail_price", _require_positive("trail_price", request.trail_price), instrument
            )
        else:
            percent = _require_positive("trail_percent", request.trail_percent)
            if percent >= HUNDRED:
                raise InvalidArgument("trail_percent must be below 100.")
    else:
        _require_absent("trail_price", request.trail_price, kind)
        _require_absent("trail_percent", request.trail_percent, kind)

    # IOC and FOK are decided the moment the order arrives, which only makes sense for
    # orders that can trade immediately (Alpaca applies the same restriction).
    if request.time_in_force in (TimeInForce.IOC, TimeInForce.FOK) and kind not in (
        OrderType.MARKET,
        OrderType.LIMIT,
    ):
        raise InvalidArgument(
            f"time_in_force {request.time_in_force.value} applies to market and limit orders only."
        )
    if kind is OrderType.TRAILING_STOP and request.time_in_force not in (
        TimeInForce.DAY,
        TimeInForce.GTC,
        TimeInForce.GTD,
    ):
        raise InvalidArgument("Trailing stops accept time_in_force day, gtc or gtd only.")
    _validate_session_terms(request)


def _validate_session_terms(request: OrderRequest) -> None:
    """GTD needs its date, auctions take market and limit orders, extended hours limit day ones."""
    tif = request.time_in_force
    if (tif is TimeInForce.GTD) != (request.expire_ns is not None):
        raise InvalidArgument(
            "time_in_force gtd needs expire_at, and expire_at applies to gtd orders only."
        )
    if tif in AUCTION_TIFS and request.order_type not in (OrderType.MARKET, OrderType.LIMIT):
        raise InvalidArgument(
            f"time_in_force {tif.value} (an auction) applies to market and limit orders only."
        )
    if request.extended_hours and (
        request.order_type is not OrderType.LIMIT or tif is not TimeInForce.DAY
    ):
        raise InvalidArgument("extended_hours applies to limit orders with time_in_force day only.")


def new_order(
    request: OrderRequest,
    instrument: Instrument,
    *,
    order_id: str,
    account_id: str,
    now_ns: int,
    market_now_ns: int | None = None,
) -> Order:
    """Validate `request` and build the order in status `new`.

    expire_at must be after `market_now_ns`, the market clock's now (default
    `now_ns`): gtd orders expire by the market clock, which in replay is offset
    from the host's.
    """
    validate_order_request(request, instrument)
    market_now = now_ns if market_now_ns is None else market_now_ns
    if request.expire_ns is not None and request.expire_ns <= market_now:
        raise InvalidArgument(
            "expire_at must be in the future of the market clock; send a later expire_at."
        )
    return Order(
        order_id=order_id,
        account_id=account_id,
        symbol=request.symbol,
        side=request.side,
        order_type=request.order_type,
        time_in_force=request.time_in_force,
        qty=request.qty,
        notional=request.notional,
        limit_price=request.limit_price,
        stop_price=request.stop_price,
        trail_price=request.trail_price,
        trail_percent=request.trail_percent,
        client_order_id=request.client_order_id,
        created_ns=now_ns,
        updated_ns=now_ns,
        expire_ns=request.expire_ns,
        extended_hours=request.extended_hours,
    )


def resolve_resubmission(existing: Order, request: OrderRequest) -> Order:
    """Idempotent submit: the same client_order_id with the same contents gets the same order.

    Decimals compare by value, so "10" and "10.0" are the same quantity.
    """
    if existing.request() == request:
        return existing
    raise AlreadyExists(
        f"client_order_id {request.client_order_id!r} was already used for order "
        f"{existing.order_id} with different contents; use a new client_order_id."
    )


def build_replacement(
    original: Order, change: ReplaceRequest, instrument: Instrument, *, order_id: str, now_ns: int
) -> Order:
    """The successor of `original` with `change` applied, in status `new`.

    The caller marks the original replaced and accepts the successor in one
    transaction; this only checks that a replace is possible and well formed.
    """
    if not original.is_open or original.status is OrderStatus.NEW:
        raise FailedPrecondition(
            f"Order {original.order_id} is {original.status.value}, so it cannot be replaced."
        )
    if original.order_type is OrderType.MARKET:
        raise FailedPrecondition("Market orders cannot be replaced; cancel and submit a new order.")
    remaining = original.remaining_qty
    assert remaining is not None  # only market orders carry notional
    trail_price, trail_percent = original.trail_price, original.trail_percent
    if change.trail_price is not None or change.trail_percent is not None:
        trail_price, trail_percent = change.trail_price, change.trail_percent
    time_in_force = change.time_in_force or original.time_in_force
    request = OrderRequest(
        symbol=original.symbol,
        side=original.side,
        order_type=original.order_type,
        time_in_force=time_in_force,
        qty=change.qty if change.qty is not None else remaining,
        limit_price=change.limit_price if change.limit_price is not None else original.limit_price,
        stop_price=change.stop_price if change.stop_price is not None else original.stop_price,
        trail_price=trail_price,
        trail_percent=trail_percent,
        client_order_id=change.client_order_id,
        expire_ns=original.expire_ns if time_in_force is TimeInForce.GTD else None,
        extended_hours=original.extended_hours,
    )
    successor = new_order(
        request, instrument, order_id=order_id, account_id=original.account_id, now_ns=now_ns
    )
    successor.replaces = original.order_id
    successor.order_class = original.order_class
    successor.parent_id = original.parent_id
    return successor
