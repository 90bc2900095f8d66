"""`fill_market_now`, the event engine's way into the fill engine, is `FillEngine.add` sooner.

Two engines see the same quote; one takes the order through `add`, the other through
`fill_market_now`: the events, the order afterwards and what stays in the book must
be the same, whether the shortcut applies or falls back to `add`.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cift.runtime.errors import FailedPrecondition
from cift.trading.fast_fill import fill_market_now, fills_whole_at_once
from cift.trading.fills import CommissionModel, FillEngine, FillModel, Quote
from cift.trading.orders import Order, OrderStatus
from cift.trading.vocabulary import Instrument, OrderType, Side, TimeInForce

TICK = Decimal("0.01")


def engine(model: FillModel, quote: Quote | None) -> FillEngine:
    fills = FillEngine(model)
    fills.set_instrument(Instrument("X", TICK, Decimal(1), False))
    if quote is not None:
        fills.on_quote(quote)
    return fills


def order(
    side: Side,
    qty: Decimal,
    tif: TimeInForce,
    kind: OrderType = OrderType.MARKET,
    status: OrderStatus = OrderStatus.ACCEPTED,
) -> Order:
    made = Order(
        order_id="X:1",
        account_id="a",
        symbol="X",
        side=side,
        order_type=kind,
        time_in_force=tif,
        qty=qty,
        notional=None,
        limit_price=Decimal("100") if kind is OrderType.LIMIT else None,
        stop_price=None,
        trail_price=None,
        trail_percent=None,
        client_order_id="",
        created_ns=1,
    )
    made.transition(status, 1)
    return made


def both(model: FillModel, quote: Quote | None, make: object) -> None:
    assert callable(make)
    slow, fast = engine(model, quote), engine(model, quote)
    slow_order, fast_order = make(), make()
    expected = slow.add(slow_order, 5)
    assert fill_market_now(fast, fast_order, 5) == expected
    assert fast_order == slow_order
    assert len(fast) == len(slow) == 0
    assert fast.open_orders_of("a", "X") == slow.open_orders_of("a", "X")


prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(5000), places=2)


@settings(max_examples=200, deadline=None)
@given(
    side=st.sampled_from(list(Side)),
    qty=st.integers(min_value=1, max_value=100_000),
    bid=prices,
    spread=st.decimals(min_value=0, max_value=Decimal(5), places=2),
    bps=st.decimals(min_value=0, max_value=Decimal(100), places=1),
    slippage=st.decimals(min_value=0, max_value=Decimal(50), places=1),
    tif=st.sampled_from([TimeInForce.IOC, TimeInForce.FOK]),
)
def test_a_market_order_fills_as_add_fills_it(
    side: Side,
    qty: int,
    bid: Decimal,
    spread: Decimal,
    bps: Decimal,
    slippage: Decimal,
    tif: TimeInForce,
) -> None:
    model = FillModel(slippage_bps=slippage, commission=CommissionModel(bps=bps))
    quote = Quote("X", bid, bid + spread, Decimal(10**12), Decimal(10**12), 3)
    fills = engine(model, quote)
    assert fills_whole_at_once(fills, order(side, Decimal(qty), tif))
    both(model, quote, lambda: order(side, Decimal(qty), tif))


@pytest.mark.parametrize(
    ("model", "quote", "kind", "tif"),
    [
        # Displayed size: 10 shares shown, 50 asked: add fills 10 and cancels the rest.
        (
            FillModel(fill_at_displayed_size=True),
            Quote("X", Decimal(99), Decimal(100), Decimal(10), Decimal(10), 3),
            OrderType.MARKET,
            TimeInForce.IOC,
        ),
        # No quote yet: add cancels the IOC order unfilled.
        (FillModel(), None, OrderType.MARKET, TimeInForce.IOC),
        # Not a market order, or one that may rest: add, unchanged.
        (
            FillModel(),
            Quote("X", Decimal(99), Decimal(100), Decimal(10), Decimal(10), 3),
            OrderType.LIMIT,
            TimeInForce.IOC,
        ),
        (
            FillModel(),
            Quote("X", Decimal(99), Decimal(100), Decimal(10), Decimal(10), 3),
            OrderType.MARKET,
            TimeInForce.DAY,
        ),
    ],
)
def test_anything_else_goes_through_add(
    model: FillModel, quote: Quote | None, kind: OrderType, tif: TimeInForce
) -> None:
    assert not fills_whole_at_once(engine(model, quote), order(Side.BUY, Decimal(50), tif, kind))
    slow, fast = engine(model, quote), engine(model, quote)
    expected = slow.add(order(Side.BUY, Decimal(50), tif, kind), 5)
    assert fill_market_now(fast, order(Side.BUY, Decimal(50), tif, kind), 5) == expected
    assert len(fast) == len(slow)


def test_an_order_not_accepted_is_refused_as_add_refuses_it() -> None:
    fills = engine(FillModel(), Quote("X", Decimal(99), Decimal(100), Decimal(1), Decimal(1), 3))
    made = order(Side.BUY, Decimal(5), TimeInForce.IOC)
    fill_market_now(fills, made, 5)
    with pytest.raises(FailedPrecondition, match="only accepted orders enter the book"):
        fill_market_now(fills, made, 6)


@pytest.mark.parametrize("side", list(Side))
def test_only_the_quote_on_the_orders_own_side_decides(side: Side) -> None:
    """A zero bid or ask is no quote: the order's own side must be quoted to fill now."""
    price, none = Decimal(100), Decimal(0)
    own_side_only = Quote(
        "X",
        none if side is Side.BUY else price,
        price if side is Side.BUY else none,
        Decimal(10),
        Decimal(10),
        3,
    )
    other_side_only = Quote(
        "X",
        price if side is Side.BUY else none,
        none if side is Side.BUY else price,
        Decimal(10),
        Decimal(10),
        3,
    )
    model = FillModel()
    assert fills_whole_at_once(
        engine(model, own_side_only), order(side, Decimal(5), TimeInForce.IOC)
    )
    both(model, own_side_only, lambda: order(side, Decimal(5), TimeInForce.IOC))
    assert not fills_whole_at_once(
        engine(model, other_side_only), order(side, Decimal(5), TimeInForce.IOC)
    )
    both(model, other_side_only, lambda: order(side, Decimal(5), TimeInForce.IOC))


def test_an_order_for_a_symbol_without_trading_rules_is_refused_as_add_refuses_it() -> None:
    fills = FillEngine(FillModel())
    fills.on_quote(Quote("X", Decimal(99), Decimal(100), Decimal(10), Decimal(10), 3))
    made = order(Side.BUY, Decimal(5), TimeInForce.IOC)
    assert not fills_whole_at_once(fills, made)
    with pytest.raises(FailedPrecondition, match="No trading rules are known for X"):
        fill_market_now(fills, made, 5)
    assert made.status is OrderStatus.ACCEPTED
    assert made.filled_qty == 0


def test_an_id_already_in_the_book_is_refused_as_add_refuses_it() -> None:
    fills = engine(FillModel(), Quote("X", Decimal(99), Decimal(101), Decimal(10), Decimal(10), 3))
    resting = order(Side.BUY, Decimal(5), TimeInForce.DAY, OrderType.LIMIT)
    assert fills.add(resting, 4) == []
    again = order(Side.BUY, Decimal(5), TimeInForce.IOC)
    assert not fills_whole_at_once(fills, again)
    with pytest.raises(FailedPrecondition, match="already in the book"):
        fill_market_now(fills, again, 5)
    assert again.filled_qty == 0
    assert fills.get("X:1") is resting


def test_an_id_held_as_an_exit_leg_is_refused_as_add_refuses_it() -> None:
    fills = engine(FillModel(), Quote("X", Decimal(99), Decimal(101), Decimal(10), Decimal(10), 3))
    leg = order(Side.SELL, Decimal(5), TimeInForce.GTC, OrderType.LIMIT, OrderStatus.HELD)
    fills.hold(leg)
    again = order(Side.BUY, Decimal(5), TimeInForce.IOC)
    assert not fills_whole_at_once(fills, again)
    with pytest.raises(FailedPrecondition, match="already in the book"):
        fill_market_now(fills, again, 5)
    assert again.filled_qty == 0
