"""The ledger's rules stated for the cases a single-position test never reaches.

Accounts holding several positions at once (flat, long and short together), both sides
of every asymmetric reservation rule, and the quote-less cases.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from cift.trading.ledger import (
    Ledger,
    Position,
    account_figures,
    order_reservation_price,
    released_reservation,
    reservation_for,
    reservation_price,
)
from cift.trading.orders import Order
from cift.trading.vocabulary import OrderType, Side, TimeInForce

D = Decimal
BUY, SELL = Side.BUY, Side.SELL


def figures(positions: list[Position], marks: dict[str, Decimal], **overrides: Decimal):  # type: ignore[no-untyped-def]
    args: dict[str, Decimal] = {
        "cash": D(10000),
        "reserved": D(0),
        "realized_pnl": D(0),
        "margin_multiplier": D(1),
        "last_equity": D(10000),
    }
    args.update(overrides)
    return account_figures(positions=positions, marks=marks, **args)


def test_a_flat_position_listed_first_does_not_hide_the_positions_after_it() -> None:
    book = [
        Position("FLAT", D(0), D(0)),
        Position("AAPL", D(10), D(1000)),
        Position("MSFT", D(5), D(1500)),
    ]
    result = figures(book, {"FLAT": D(7), "AAPL": D(110), "MSFT": D(310)})
    assert result.long_market_value == D(1100) + D(1550)
    assert result.unrealized_pnl == D(100) + D(50)
    assert result.equity == D(10000) + D(2650)


def test_several_longs_and_a_short_add_up_on_every_figure() -> None:
    # Cash 10,000 after buying AAPL (1,000) and MSFT (1,500) and shorting TSLA (+2,000).
    book = [
        Position("AAPL", D(10), D(1000)),
        Position("MSFT", D(5), D(1500)),
        Position("TSLA", D(-10), D(-2000)),
    ]
    result = figures(
        book,
        {"AAPL": D(110), "MSFT": D(290), "TSLA": D(190)},
        cash=D(10000),
        last_equity=D(9000),
        reserved=D(100),
        margin_multiplier=D(2),
    )
    assert result.long_market_value == D(1100) + D(1450)
    assert result.short_market_value == D(-1900)
    assert result.unrealized_pnl == D(100) - D(50) + D(100)
    assert result.equity == D(10000) + D(2550) - D(1900)
    assert result.day_pnl == result.equity - D(9000)
    # (cash + net cost) * 2 - gross cost - reserved: (10,000 + 500) * 2 - 4,500 - 100.
    assert result.buying_power == D(16400)


def test_one_share_long_and_two_shorts_each_land_on_their_side() -> None:
    book = [
        Position("ONE", D(1), D(50)),
        Position("TSLA", D(-2), D(-400)),
        Position("NVDA", D(-3), D(-300)),
    ]
    result = figures(
        book, {"ONE": D(55), "TSLA": D(190), "NVDA": D(110)}, realized_pnl=D(7), last_equity=D(1)
    )
    assert result.long_market_value == D(55)
    assert result.short_market_value == D(-380) + D(-330)
    assert result.unrealized_pnl == D(5) + D(20) - D(30)
    assert (result.realized_pnl, result.last_equity) == (D(7), D(1))


def test_a_position_without_a_mark_counts_at_cost() -> None:
    book = [Position("AAPL", D(10), D(1000)), Position("MSFT", D(-2), D(-600))]
    result = figures(book, {})
    assert (result.long_market_value, result.short_market_value) == (D(1000), D(-600))
    assert result.unrealized_pnl == 0
    assert result.equity == D(10400)


def test_reservations_larger_than_buying_power_leave_zero_not_a_negative_figure() -> None:
    result = figures([], {}, reserved=D(10001))
    assert result.buying_power == 0
    assert result.reserved == D(10001)


@pytest.mark.parametrize(
    ("side", "market", "expected"),
    [
        (BUY, D(105), D(105)),  # a buy stop reserves at the worse (higher) of stop and ask
        (BUY, D(95), D(100)),
        (SELL, D(95), D(95)),  # a sell stop at the worse (lower) of stop and bid
        (SELL, D(105), D(100)),
        (BUY, None, D(100)),  # no quote: the stop itself
        (SELL, None, D(100)),
    ],
)
def test_a_stop_reserves_at_the_worse_of_stop_and_quote(
    side: Side, market: Decimal | None, expected: Decimal
) -> None:
    price = reservation_price(
        side=side,
        order_type=OrderType.STOP,
        limit_price=None,
        stop_price=D(100),
        trail_price=None,
        trail_percent=None,
        bid=market if side is SELL else D(1),
        ask=market if side is BUY else D(1000),
    )
    assert price == expected


def trailing(side: Side, **trail: Decimal | None) -> Decimal | None:
    return reservation_price(
        side=side,
        order_type=OrderType.TRAILING_STOP,
        limit_price=None,
        stop_price=None,
        trail_price=trail.get("trail_price"),
        trail_percent=trail.get("trail_percent"),
        bid=D(99),
        ask=D(100),
    )


def test_a_buy_trailing_stop_reserves_where_it_would_trigger_today() -> None:
    assert trailing(BUY, trail_price=D("2.50")) == D("102.50")
    assert trailing(BUY, trail_percent=D(5)) == D(105)


def test_a_sell_trailing_stop_reserves_at_the_bid() -> None:
    assert trailing(SELL, trail_price=D("2.50")) == D(99)


def test_limits_reserve_at_their_limit_and_markets_at_the_quote_on_their_side() -> None:
    common = {"stop_price": None, "trail_price": None, "trail_percent": None}
    quote = {"bid": D(99), "ask": D(100)}
    for kind in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        assert reservation_price(
            side=BUY, order_type=kind, limit_price=D(90), **common, **quote
        ) == D(90)
    assert reservation_price(
        side=BUY, order_type=OrderType.MARKET, limit_price=None, **common, **quote
    ) == D(100)
    assert reservation_price(
        side=SELL, order_type=OrderType.MARKET, limit_price=None, **common, **quote
    ) == D(99)
    assert (
        reservation_price(
            side=BUY, order_type=OrderType.MARKET, limit_price=None, **common, bid=None, ask=None
        )
        is None
    )


def test_a_notional_order_reserves_its_dollars_when_it_all_opens_exposure() -> None:
    held = reservation_for(
        side=BUY,
        qty=None,
        notional=D("250.00"),
        price=D(100),
        position_qty=D(0),
        open_qty_same_side=D(0),
    )
    assert held == D("250.00")


def test_a_notional_buy_against_a_short_reserves_only_the_shares_beyond_the_cover() -> None:
    # $250 at $100 is 2.5 shares; 1 covers the short, 1.5 open a long: $150.
    held = reservation_for(
        side=BUY,
        qty=None,
        notional=D("250.00"),
        price=D(100),
        position_qty=D(-1),
        open_qty_same_side=D(0),
    )
    assert held == D("150.00")


@pytest.mark.parametrize(
    ("side", "position", "promised", "expected"),
    [
        (SELL, D(10), D(0), D(0)),  # closing a long needs nothing
        (SELL, D(10), D(4), D(400)),  # 6 left to close, 4 open a short
        (SELL, D(4), D(0), D(600)),  # crossing zero: the 6 beyond the long
        (SELL, D(9), D(0), D(100)),  # one share beyond the long
        (BUY, D(-10), D(0), D(0)),  # covering a short needs nothing
        (BUY, D(-10), D(3), D(300)),
        (BUY, D(10), D(0), D(1000)),  # growing a long needs it all
        (SELL, D(-10), D(0), D(1000)),  # growing a short too
    ],
)
def test_only_the_part_that_opens_exposure_reserves(
    side: Side, position: Decimal, promised: Decimal, expected: Decimal
) -> None:
    held = reservation_for(
        side=side,
        qty=D(10),
        notional=None,
        price=D(100),
        position_qty=position,
        open_qty_same_side=promised,
    )
    assert held == expected


def test_a_fill_releases_its_share_of_the_reservation() -> None:
    assert released_reservation(D(1000), D(3), D(10)) == D(300)
    assert released_reservation(D(1000), D(10), D(10)) == D(1000)
    assert released_reservation(D("100.00"), D(1), D(3)) == D("33.33")
    assert released_reservation(D(1000), D(1), D(0)) == D(1000)
    assert released_reservation(D(100), D("0.5"), D(1)) == D(50)


def test_unrealized_pnl_is_the_marked_value_less_the_cost_on_either_side() -> None:
    long = Position("AAPL", qty=Decimal(10), cost_basis=Decimal("1000.00"))
    short = Position("AAPL", qty=Decimal(-10), cost_basis=Decimal("-1000.00"))
    assert long.unrealized_pnl(Decimal("101.255")) == Decimal("12.55")  # 1012.55 - 1000
    assert short.unrealized_pnl(Decimal("101.255")) == Decimal("-12.55")  # -1012.55 + 1000


def an_order(
    side: Side,
    order_type: OrderType,
    *,
    limit_price: Decimal | None = None,
    stop_price: Decimal | None = None,
    trail_price: Decimal | None = None,
    trail_percent: Decimal | None = None,
) -> Order:
    return Order(
        order_id="o-1",
        account_id="a-1",
        symbol="AAPL",
        side=side,
        order_type=order_type,
        time_in_force=TimeInForce.DAY,
        qty=D(10),
        notional=None,
        limit_price=limit_price,
        stop_price=stop_price,
        trail_price=trail_price,
        trail_percent=trail_percent,
        client_order_id="c-1",
        created_ns=1,
    )


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        (an_order(BUY, OrderType.MARKET), D("100.10")),
        (an_order(SELL, OrderType.MARKET), D("99.90")),
        (an_order(BUY, OrderType.LIMIT, limit_price=D(95)), D(95)),
        (an_order(SELL, OrderType.STOP_LIMIT, stop_price=D(90), limit_price=D(89)), D(89)),
        (an_order(BUY, OrderType.STOP, stop_price=D(105)), D(105)),
        (an_order(BUY, OrderType.STOP, stop_price=D(99)), D("100.10")),
        (an_order(SELL, OrderType.STOP, stop_price=D(95)), D(95)),
        (an_order(SELL, OrderType.STOP, stop_price=D(101)), D("99.90")),
        (an_order(BUY, OrderType.TRAILING_STOP, trail_price=D(2)), D("102.10")),
        (an_order(BUY, OrderType.TRAILING_STOP, trail_percent=D(10)), D("110.110")),
        (an_order(SELL, OrderType.TRAILING_STOP, trail_price=D(2)), D("99.90")),
    ],
)
def test_an_order_reserves_at_the_price_its_own_terms_name(order: Order, expected: Decimal) -> None:
    assert order_reservation_price(order, D("99.90"), D("100.10")) == expected


def test_an_order_without_a_quote_reserves_only_where_its_terms_name_a_price() -> None:
    assert order_reservation_price(an_order(BUY, OrderType.MARKET), None, None) is None
    assert order_reservation_price(an_order(BUY, OrderType.STOP, stop_price=D(7)), None, None) == D(
        7
    )
    assert order_reservation_price(
        an_order(BUY, OrderType.LIMIT, limit_price=D(6)), None, None
    ) == D(6)


def test_an_empty_ledgers_cost_totals_are_exact_decimals() -> None:
    # Money is Decimal end to end: an account with no positions yet reports Decimal
    # zeros, not the integer 0 a bare sum of nothing gives.
    ledger = Ledger(cash=D(1000))
    assert isinstance(ledger.net_cost, Decimal)
    assert isinstance(ledger.gross_cost, Decimal)
    assert (ledger.net_cost, ledger.gross_cost) == (D(0), D(0))


def test_a_ledger_reports_an_unheld_symbol_as_a_flat_position_in_that_symbol() -> None:
    ledger = Ledger(cash=D(1000), positions={"MSFT": Position("MSFT", D(1), D(300))})
    flat = ledger.position("AAPL")
    assert flat.symbol == "AAPL"
    assert (flat.qty, flat.cost_basis) == (D(0), D(0))
    assert ledger.position("MSFT") == Position("MSFT", D(1), D(300))
