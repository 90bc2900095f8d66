"""What a fill's explanation names: the tick whose price was taken, and the quote seen.

The explanation is what a trader reads to audit a fill, so each figure must
come from the tick the price came from, and a missing tick must read as
"none" (sequence and time 0, sides empty), not as made-up numbers.
"""

from __future__ import annotations

from decimal import Decimal

from cift.trading.fill_events import FillExplanation, PriceSource, Quote, Trade
from cift.trading.fill_model import CommissionModel, FillModel, FillPricer

D = Decimal
QUOTE = Quote("AAPL", D("99.90"), D("100.10"), D(300), D(200), ts_ns=5_000, sequence=41)
TRADE = Trade("AAPL", D("100.00"), D(50), ts_ns=6_000, sequence=42)
PRICER = FillPricer(
    FillModel(
        fill_at_displayed_size=True,
        slippage_bps=D(5),
        commission=CommissionModel(per_share=D("0.01"), bps=D(2)),
    )
)


def test_a_quote_fill_names_the_quote_and_carries_the_models_settings() -> None:
    explanation = PRICER.explain(
        PriceSource.QUOTE,
        D("100.10"),
        quote=QUOTE,
        trade=None,
        limit=D(101),
        available=D(200),
    )
    assert explanation == FillExplanation(
        PriceSource.QUOTE,
        41,
        5_000,
        D("100.10"),
        bid=D("99.90"),
        ask=D("100.10"),
        bid_size=D(300),
        ask_size=D(200),
        available_qty=D(200),
        limit_price=D(101),
        displayed_size_only=True,
        slippage_bps=D(5),
        commission_per_share=D("0.01"),
        commission_bps=D(2),
    )


def test_a_quote_fill_names_the_quote_even_when_a_trade_is_at_hand() -> None:
    explanation = PRICER.explain(
        PriceSource.QUOTE, D("100.10"), quote=QUOTE, trade=TRADE, limit=None, available=None
    )
    assert (explanation.tick_sequence, explanation.tick_ts_ns) == (41, 5_000)


def test_an_auction_fill_names_the_trade_and_still_shows_the_last_quote() -> None:
    explanation = PRICER.explain(
        PriceSource.OPENING_AUCTION,
        D("100.00"),
        quote=QUOTE,
        trade=TRADE,
        limit=None,
        available=None,
    )
    assert (explanation.tick_sequence, explanation.tick_ts_ns) == (42, 6_000)
    assert (explanation.trade_price, explanation.trade_size) == (D("100.00"), D(50))
    assert (explanation.bid, explanation.ask) == (D("99.90"), D("100.10"))


def test_a_fill_without_any_tick_names_none_rather_than_made_up_figures() -> None:
    explanation = PRICER.explain(
        PriceSource.QUOTE, D("100.00"), quote=None, trade=None, limit=None, available=None
    )
    assert (explanation.tick_sequence, explanation.tick_ts_ns) == (0, 0)
    assert (explanation.bid, explanation.ask, explanation.bid_size, explanation.ask_size) == (
        None,
        None,
        None,
        None,
    )
    assert (explanation.trade_price, explanation.trade_size) == (None, None)


def test_an_auction_fill_without_a_quote_seen_leaves_the_quote_fields_empty() -> None:
    explanation = PRICER.explain(
        PriceSource.CLOSING_AUCTION,
        D("100.00"),
        quote=None,
        trade=TRADE,
        limit=None,
        available=None,
    )
    assert (explanation.tick_sequence, explanation.bid, explanation.ask_size) == (42, None, None)
