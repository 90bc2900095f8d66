"""Each rounding rule of `cift.trading.money`, at its ties and on both signs."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from cift.trading import money


@pytest.mark.parametrize(
    ("amount", "cents"),
    [
        ("10.005", "10.01"),  # a half cent goes up ...
        ("10.015", "10.02"),  # ... whichever the cent digit (not half-even's 10.02/10.02)
        ("10.025", "10.03"),
        ("-10.005", "-10.01"),  # ... and away from zero for a debit
        ("10.0049999", "10.00"),
        ("-10.0049999", "-10.00"),
        ("0.004", "0.00"),
        ("123456789.999", "123456790.00"),
    ],
)
def test_cash_rounds_half_up_to_the_cent(amount: str, cents: str) -> None:
    rounded = money.to_cents(D(amount))
    assert rounded == D(cents)
    assert rounded.as_tuple().exponent == -2


@pytest.mark.parametrize(
    ("amount", "cents"),
    [
        (2.675, "2.68"),  # the float 2.675 reads as "2.675": a tie, to the even cent
        (2.665, "2.66"),
        (-2.665, "-2.66"),
        (0.1 + 0.2, "0.30"),  # 0.30000000000000004
        (1e-9, "0.00"),
        (100.0, "100.00"),
    ],
)
def test_a_float_engines_cash_reads_as_its_shortest_decimal_then_half_even(
    amount: float, cents: str
) -> None:
    assert money.cents_of_float(amount) == D(cents)


@pytest.mark.parametrize(
    ("total", "qty", "average"),
    [
        ("100.0000005", "1", "100.000001"),  # half a step goes up
        ("100.0000015", "1", "100.000002"),
        ("-100.0000005", "-1", "100.000001"),  # a short's cost over its negative size
        ("-100.0000005", "1", "-100.000001"),
        ("10", "3", "3.333333"),
        ("20", "3", "6.666667"),
    ],
)
def test_average_prices_round_half_up_to_a_millionth(total: str, qty: str, average: str) -> None:
    assert money.average_price(D(total), D(qty)) == D(average)


def test_an_average_of_nothing_is_refused() -> None:
    with pytest.raises(ArithmeticError):
        money.average_price(D(10), D(0))


@pytest.mark.parametrize(
    ("value", "ratio"),
    [
        ("0.0000005", "0.000000"),  # a tie to the even millionth
        ("0.0000015", "0.000002"),
        ("-0.0000005", "0.000000"),
        ("-0.0000015", "-0.000002"),
        ("-0.0019980019980", "-0.001998"),  # -200 / 100100
        ("0.05", "0.050000"),
    ],
)
def test_ratios_round_half_even_to_a_millionth(value: str, ratio: str) -> None:
    assert money.to_ratio(D(value)) == D(ratio)


@pytest.mark.parametrize(
    ("qty", "increment", "floored"),
    [
        ("7.5", "1", "7"),
        ("7", "1", "7"),
        ("0.9999", "1", "0"),
        ("0.123456789123", "0.000000001", "0.123456789"),
        ("12.5", "5", "10"),
        ("-7.5", "1", "-8"),  # down, not toward zero
    ],
)
def test_a_derived_quantity_rounds_down_to_the_increment(
    qty: str, increment: str, floored: str
) -> None:
    assert money.floor_to_increment(D(qty), D(increment)) == D(floored)


@pytest.mark.parametrize("increment", ["0", "-1"])
def test_a_quantity_increment_must_be_positive(increment: str) -> None:
    with pytest.raises(ValueError, match="increment must be positive"):
        money.floor_to_increment(D(1), D(increment))


@pytest.mark.parametrize(
    ("value", "places", "shown"),
    [
        ("101.23455", 4, "101.2346"),  # a tie at the last place, to even: 6
        ("101.23445", 4, "101.2344"),
        ("-101.23445", 4, "-101.2344"),
        ("0.1234567895", 9, "0.123456790"),
        ("7", 2, "7.00"),
    ],
)
def test_figures_in_messages_are_shown_half_even(value: str, places: int, shown: str) -> None:
    assert str(money.to_places(D(value), places)) == shown


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        ("1234.565", "$1,234.57"),  # cash: half up
        ("1234.564", "$1,234.56"),
        ("0.005", "$0.01"),
        ("-0.005", "$-0.01"),
        ("1000000", "$1,000,000.00"),
    ],
)
def test_dollars_are_cash_to_the_cent_with_separators(amount: str, shown: str) -> None:
    assert money.dollars(D(amount)) == shown


def test_the_vocabulary_names_the_same_cash_rule() -> None:
    """Order and fill modules read `to_cents` from the vocabulary: it must be this one."""
    from cift.trading import vocabulary

    assert vocabulary.to_cents is money.to_cents
    assert vocabulary.CENT == money.CENT == D("0.01")
