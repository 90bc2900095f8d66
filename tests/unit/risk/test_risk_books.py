"""Risk's in-memory views: latest quotes, positions from fills, the desk."""

from __future__ import annotations

from decimal import Decimal

from cift.trading.pretrade.exposure import ExposureBook, position_breaches
from cift.trading.pretrade.limits import LimitOverrides, RiskLimits
from cift.trading.pretrade.quote import Quote
from cift.trading.pretrade.rules import Reason
from cift.trading.pretrade.trading_state import TradingState
from services.risk.desk import CallerFigures, RiskDesk
from services.risk.quotes import QuoteBook
from tests.unit.risk.risk_builders import AAPL, NOW_NS, D, order


def q(bid: str, ask: str, ts: int = NOW_NS) -> Quote:
    return Quote("AAPL", D(bid), D(ask), D(0), ts)


def test_newer_quote_replaces_older() -> None:
    book = QuoteBook()
    assert book.update(q("1", "2"), sequence=1)
    assert book.update(q("3", "4"), sequence=2)
    assert book.latest("AAPL") == q("3", "4")


def test_replayed_older_quote_is_ignored() -> None:
    book = QuoteBook()
    book.update(q("3", "4"), sequence=5)
    assert not book.update(q("1", "2"), sequence=4)
    assert book.latest("AAPL") == q("3", "4")
    assert book.latest("MSFT") is None


def test_fill_sets_position_so_a_duplicate_changes_nothing() -> None:
    book = ExposureBook()
    book.set_position("a", "AAPL", D(10), D(100))
    book.set_position("a", "AAPL", D(10), D(100))
    assert book.position_qty("a", "AAPL") == D(10)


def test_gross_exposure_marks_longs_and_shorts_at_the_quote_else_the_fill() -> None:
    book = ExposureBook()
    book.set_position("a", "AAPL", D(10), D(100))
    book.set_position("a", "MSFT", D(-5), D(200))
    marks = {"AAPL": D(110)}
    assert book.gross_exposure("a", marks.get) == D(10 * 110 + 5 * 200)
    assert book.gross_exposure("b", marks.get) == D(0)


def test_closed_position_leaves_the_book() -> None:
    book = ExposureBook()
    book.set_position("a", "AAPL", D(10), D(100))
    book.set_position("a", "AAPL", D(0), D(101))
    assert book.gross_exposure("a", lambda _: None) == D(0)


def test_position_over_limits_is_a_breach() -> None:
    limits = RiskLimits(
        max_position_qty=D(100), max_position_notional=D(5000), max_gross_exposure=D(6000)
    )
    found = position_breaches("AAPL", D(-120), D(50), D(6001), limits)
    assert [v.reason for v in found] == [
        Reason.MAX_POSITION_QTY,
        Reason.MAX_POSITION_NOTIONAL,
        Reason.MAX_GROSS_EXPOSURE,
    ]
    assert position_breaches("AAPL", D(10), D(50), D(500), limits) == []


def test_desk_prefers_the_callers_position_and_falls_back_to_fills() -> None:
    desk = RiskDesk(RiskLimits())
    desk.exposure.set_position("acct-1", "AAPL", D(7), D(100))
    from_fills = desk.snapshot(order(), CallerFigures(buying_power=D(1)), AAPL, None, NOW_NS)
    assert from_fills.position_qty == D(7)
    assert from_fills.gross_exposure == D(700)
    sent = desk.snapshot(
        order(), CallerFigures(buying_power=D(1), position_qty=D(3)), AAPL, None, NOW_NS
    )
    assert sent.position_qty == D(3)


def test_desk_applies_overrides_and_the_kill_switch() -> None:
    desk = RiskDesk(RiskLimits())
    desk.set_overrides("acct-1", LimitOverrides(max_order_qty=D(2)))
    assert desk.limits_for("acct-1").max_order_qty == D(2)
    desk.set_overrides("acct-1", LimitOverrides())
    assert desk.limits_for("acct-1").max_order_qty == RiskLimits().max_order_qty
    desk.states["acct-1"] = TradingState.REDUCING
    desk.venue_state = TradingState.HALTED
    assert desk.effective_state_of("acct-1") is TradingState.HALTED
    assert desk.effective_state_of("acct-2") is TradingState.HALTED


def test_decimal_marks_are_exact() -> None:
    desk = RiskDesk(RiskLimits())
    desk.quotes.update(Quote("AAPL", D("0.1"), D("0.2"), D(0), NOW_NS), 1)
    assert desk.mark("AAPL") == Decimal("0.15")
