"""A position's figures since the previous close, and the trading day they run from."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from cift.trading.intraday import (
    NS_PER_DAY,
    DayFills,
    IntradayFigures,
    carried_qty,
    intraday_figures,
    trading_day,
)
from cift.trading.ledger import Position

D = Decimal
OVERNIGHT = DayFills()  # no fills since the trading day started


def ns(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * 1_000_000_000


# ---- the figures -------------------------------------------------------------------


def test_long_held_overnight_gains_qty_times_the_move_since_the_close() -> None:
    figures = intraday_figures(
        Position("AAPL", D(10), D("1000.00")), D("110.37"), D(105), OVERNIGHT
    )
    assert figures == IntradayFigures(D(105), D("0.051143"), D("53.70"))


def test_short_held_overnight_gains_when_the_price_falls() -> None:
    figures = intraday_figures(Position("AAPL", D(-10), D("-1000.00")), D(100), D(105), OVERNIGHT)
    assert figures == IntradayFigures(D(105), D("-0.047619"), D("50.00"))


def test_bought_today_the_intraday_pl_is_the_unrealized_pl() -> None:
    held = Position("AAPL", D(10), D("1002.50"))
    today = DayFills(bought_qty=D(10), bought_amount=D("1002.50"))
    figures = intraday_figures(held, D(101), D(99), today)
    assert figures.unrealized_intraday_pl == held.unrealized_pnl(D(101)) == D("7.50")
    assert figures.change_today == D("0.020202")


def test_bought_today_needs_no_previous_close() -> None:
    held = Position("NEWCO", D(10), D("1002.50"))
    today = DayFills(bought_qty=D(10), bought_amount=D("1002.50"))
    assert intraday_figures(held, D(101), None, today) == IntradayFigures(None, None, D("7.50"))


def test_held_overnight_without_a_previous_close_reports_nothing_since_it() -> None:
    held = Position("AAPL", D(10), D("1000.00"))
    assert intraday_figures(held, D(101), None, OVERNIGHT) == IntradayFigures(None, None, None)


def test_without_a_current_price_only_the_previous_close_is_known() -> None:
    held = Position("AAPL", D(10), D("1000.00"))
    assert intraday_figures(held, None, D(99), OVERNIGHT) == IntradayFigures(D(99), None, None)


def test_shares_added_today_count_from_their_cost_and_the_rest_from_the_close() -> None:
    # 10 held overnight at 100, 5 bought today at 120; closed at 110, now 125.
    held = Position("AAPL", D(15), D("1600.00"))
    today = DayFills(bought_qty=D(5), bought_amount=D("600.00"))
    figures = intraday_figures(held, D(125), D(110), today)
    assert figures.unrealized_intraday_pl == 10 * (125 - 110) + (5 * 125 - 600) == D(175)


def test_short_added_today_counts_the_new_shares_from_their_proceeds() -> None:
    # 10 short overnight at 100, 5 more sold today at 90; closed at 95, now 92.
    held = Position("AAPL", D(-15), D("-1450.00"))
    today = DayFills(sold_qty=D(5), sold_amount=D("450.00"))
    figures = intraday_figures(held, D(92), D(95), today)
    assert figures.unrealized_intraday_pl == 10 * (95 - 92) + (450 - 5 * 92) == D(20)


def test_a_partial_sale_today_leaves_the_rest_counted_from_the_close() -> None:
    held = Position("AAPL", D(6), D("600.00"))
    today = DayFills(sold_qty=D(4), sold_amount=D("440.00"))
    figures = intraday_figures(held, D(112), D(110), today)
    assert figures.unrealized_intraday_pl == 6 * (112 - 110)


def test_sales_today_close_the_overnight_shares_first() -> None:
    # 100 overnight, 50 sold, then 50 bought at 120: 50 from the close, 50 from 120.
    today = DayFills(D(50), D("6000.00"), D(50), D("5750.00"))
    assert carried_qty(D(100), today) == 50
    figures = intraday_figures(Position("AAPL", D(100), D("11000.00")), D(121), D(110), today)
    assert figures.unrealized_intraday_pl == 50 * (121 - 110) + 50 * (121 - 120)


def test_a_position_reversed_today_is_all_today_s() -> None:
    # Long 10 overnight, sold 15: the 5 short were opened today.
    held = Position("AAPL", D(-5), D("-500.00"))
    today = DayFills(sold_qty=D(15), sold_amount=D("1500.00"))
    assert carried_qty(held.qty, today) == 0
    figures = intraday_figures(held, D(98), D(103), today)
    assert figures.unrealized_intraday_pl == held.unrealized_pnl(D(98)) == D(10)


def test_a_position_closed_and_reopened_today_is_all_today_s() -> None:
    today = DayFills(D(10), D("1050.00"), D(10), D("1040.00"))
    assert carried_qty(D(10), today) == 0


def test_each_leg_is_rounded_to_the_cent_like_market_value() -> None:
    # 0.5 x 20.01 = 10.005 -> 10.01 (the market value); 0.5 x 20.008 = 10.004 -> 10.00.
    # Rounding the unrounded difference (0.001) instead would report 0.00.
    held = Position("AAPL", D("0.5"), D("9.00"))
    figures = intraday_figures(held, D("20.01"), D("20.008"), OVERNIGHT)
    assert figures.unrealized_intraday_pl == held.market_value(D("20.01")) - D("10.00")
    assert figures.unrealized_intraday_pl == D("0.01")
    assert figures.change_today == D("0.000100")  # 0.00009996...: six decimals


def test_change_today_has_six_decimals_rounded_half_even() -> None:
    held = Position("AAPL", D(1), D(3))
    assert intraday_figures(held, D(5), D(3), OVERNIGHT).change_today == D("0.666667")
    assert intraday_figures(held, D("1.0000005"), D(1), OVERNIGHT).change_today == D(0)


@given(
    qty=st.decimals(min_value=D("-1000"), max_value=D("1000"), places=3).filter(bool),
    cost=st.decimals(min_value=D("1"), max_value=D("100000"), places=2),
    lastday=st.decimals(min_value=D("0.01"), max_value=D("5000"), places=4),
    mark=st.decimals(min_value=D("0.01"), max_value=D("5000"), places=4),
)
def test_untouched_overnight_the_day_s_pl_is_the_change_of_unrealized_pl(
    qty: Decimal, cost: Decimal, lastday: Decimal, mark: Decimal
) -> None:
    held = Position("AAPL", qty, cost if qty > 0 else -cost)
    figures = intraday_figures(held, mark, lastday, OVERNIGHT)
    assert figures.unrealized_intraday_pl == held.unrealized_pnl(mark) - held.unrealized_pnl(
        lastday
    )


# ---- the trading day ---------------------------------------------------------------


def test_an_always_open_market_rolls_its_day_at_utc_midnight() -> None:
    now = ns("2025-03-12T15:04:05")
    day = trading_day(now_ns=now, is_open=True, next_open_ns=None, next_close_ns=None)
    assert day.start_ns == ns("2025-03-12T00:00:00")
    assert day.valid_until_ns == day.start_ns + NS_PER_DAY


def test_an_open_session_counts_from_today_until_its_close() -> None:
    close = ns("2025-03-12T20:00:00")
    day = trading_day(
        now_ns=ns("2025-03-12T15:00:00"), is_open=True, next_open_ns=None, next_close_ns=close
    )
    assert day.start_ns == ns("2025-03-12T00:00:00") and day.valid_until_ns == close


def test_before_the_open_the_day_is_already_the_coming_session_s() -> None:
    day = trading_day(
        now_ns=ns("2025-03-12T11:00:00"),
        is_open=False,
        next_open_ns=ns("2025-03-12T13:30:00"),
        next_close_ns=ns("2025-03-12T20:00:00"),
    )
    assert day.start_ns == ns("2025-03-12T00:00:00")


def test_after_friday_s_close_the_day_is_monday_s() -> None:
    # Today's bar is then the previous close, and no fill is today's yet.
    monday_close = ns("2025-03-17T20:00:00")
    day = trading_day(
        now_ns=ns("2025-03-14T21:00:00"),
        is_open=False,
        next_open_ns=ns("2025-03-17T13:30:00"),
        next_close_ns=monday_close,
    )
    assert day.start_ns == ns("2025-03-17T00:00:00") and day.valid_until_ns == monday_close
