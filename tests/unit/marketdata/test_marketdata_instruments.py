"""The universe: default table, CSV configuration and the tick grid."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cift.runtime.errors import InvalidArgument, NotFound
from services.marketdata.instruments import (
    default_universe,
    parse_universe_csv,
    tick_size_for_price,
    universe_to_csv,
)


def test_default_universe_has_about_fifty_liquid_names_with_valid_grids() -> None:
    universe = default_universe()
    assert 45 <= len(universe) <= 60
    assert {"AAPL", "MSFT", "SPY", "QQQ"} <= set(universe.symbols)
    for instrument in universe.instruments:
        assert instrument.start_price % instrument.tick_at(instrument.start_price) == 0
        assert instrument.round_lot == 100
        assert 0 < instrument.volatility < 1


def test_sub_dollar_prices_use_the_sub_penny_grid() -> None:
    assert tick_size_for_price(Decimal("0.9999")) == Decimal("0.0001")
    assert tick_size_for_price(Decimal("1.00")) == Decimal("0.01")
    penny_stock = default_universe().get("SNDL")
    assert penny_stock.tick_at(penny_stock.start_price) == Decimal("0.0001")
    assert not penny_stock.fractionable


def test_lookup_is_case_insensitive_and_unknown_symbol_is_not_found() -> None:
    universe = default_universe()
    assert universe.get(" aapl ").symbol == "AAPL"
    with pytest.raises(NotFound, match="ZZZZ"):
        universe.get("ZZZZ")


def test_symbol_filter_splits_commas_dedupes_and_refuses_unknown_symbols() -> None:
    universe = default_universe()
    assert universe.resolve(["aapl,MSFT", "AAPL"]) == ("AAPL", "MSFT")
    assert universe.resolve([]) == ()
    with pytest.raises(NotFound):
        universe.resolve(["AAPL,NOPE"])


def test_universe_round_trips_through_its_csv_format() -> None:
    universe = default_universe()
    again = parse_universe_csv(universe_to_csv(universe))
    assert again.instruments == universe.instruments


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("start_price", "-1", "positive"),
        ("start_price", "10.005", "tick grid"),
        ("tick_size", "abc", "decimal"),
        ("fractionable", "maybe", "true or false"),
        ("volatility", "9", "volatility"),
        ("asset_class", "crypto", "asset class"),
    ],
)
def test_bad_universe_rows_are_refused_with_the_column_named(
    column: str, value: str, message: str
) -> None:
    header = "symbol,name,asset_class,exchange,start_price,tick_size,lot_size,round_lot,fractionable,shortable,volatility"
    good = dict(
        zip(
            header.split(","),
            [
                "ABC",
                "Abc Inc.",
                "us_equity",
                "NYSE",
                "10.00",
                "0.01",
                "1",
                "100",
                "true",
                "true",
                "0.3",
            ],
            strict=True,
        )
    )
    good[column] = value
    text = header + "\n" + ",".join(good[c] for c in header.split(",")) + "\n"
    with pytest.raises(InvalidArgument, match=message):
        parse_universe_csv(text)


def test_duplicate_symbols_and_missing_columns_are_refused() -> None:
    header = "symbol,name,asset_class,exchange,start_price,tick_size,lot_size,round_lot,fractionable,shortable,volatility"
    row = "ABC,Abc,us_equity,NYSE,10.00,0.01,1,100,true,true,0.3"
    with pytest.raises(InvalidArgument, match="twice"):
        parse_universe_csv(f"{header}\n{row}\n{row}\n")
    with pytest.raises(InvalidArgument, match="lacks columns"):
        parse_universe_csv("symbol,name\nABC,Abc\n")
    with pytest.raises(InvalidArgument, match="at least one"):
        parse_universe_csv(header + "\n")
