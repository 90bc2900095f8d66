"""Wire decimals become exact Decimals or a clear INVALID_ARGUMENT."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cift.runtime.errors import InvalidArgument
from cift.runtime.money import (
    decimal_of_double,
    format_decimal,
    is_multiple_of,
    parse_decimal,
    require_decimal,
    round_to_increment,
)


def test_decimal_strings_parse_exactly() -> None:
    assert require_decimal("qty", "0.1") + require_decimal("qty", "0.2") == Decimal("0.3")


@pytest.mark.parametrize("text", ["NaN", "nan", "Infinity", "-inf", "abc", "1,5", "1e999", "0x10"])
def test_garbage_and_non_finite_values_are_refused(text: str) -> None:
    with pytest.raises(InvalidArgument, match="limit_price"):
        parse_decimal("limit_price", text)


def test_empty_is_refused_unless_optional() -> None:
    with pytest.raises(InvalidArgument, match="qty is required"):
        parse_decimal("qty", "")
    assert parse_decimal("qty", "", allow_empty=True) is None


@pytest.mark.parametrize(
    "text",
    [
        "1_0",
        "\u0661",
        "\uff11",
        " 1 ",
        "1 ",
        "\t1",
        "1\n",
        "+1",
        "1e2",
        "1E2",
        "--1",
        "1.2.3",
        "-",
        ".",
    ],
)
def test_only_plain_ascii_decimals_are_accepted(text: str) -> None:
    """The security probe's finding: "1_0" placed a 10-share order, "1e2" one of 100."""
    with pytest.raises(InvalidArgument, match="qty must be a plain decimal string"):
        parse_decimal("qty", text, allow_empty=True)


@pytest.mark.parametrize(
    ("text", "value"),
    [("10", "10"), ("-3", "-3"), ("10.5", "10.5"), ("0.001", "0.001"), (".5", "0.5"), ("5.", "5")],
)
def test_plain_decimals_keep_their_exact_value(text: str, value: str) -> None:
    assert require_decimal("qty", text) == Decimal(value)


def test_formatting_never_uses_exponents() -> None:
    assert format_decimal(Decimal("1E+2")) == "100"
    assert format_decimal(Decimal("100.2500")) == "100.25"
    assert format_decimal(Decimal("0E-8")) == "0"


def test_rounding_to_a_tick_and_grid_membership() -> None:
    assert round_to_increment(Decimal("10.006"), Decimal("0.01")) == Decimal("10.01")
    assert is_multiple_of(Decimal("10.05"), Decimal("0.05"))
    assert not is_multiple_of(Decimal("10.03"), Decimal("0.05"))


@given(
    st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=6, allow_nan=False)
)
def test_format_then_parse_round_trips(value: Decimal) -> None:
    assert require_decimal("x", format_decimal(value)) == value


@pytest.mark.parametrize("price", [100.1, 0.0001, 187.35, 1e-7, 4321.5])
def test_a_feed_double_reads_as_the_decimal_the_feed_wrote(price: float) -> None:
    # 100.1 as a double is 100.099999999999994315658...: the feed meant 100.1.
    assert decimal_of_double(price) == Decimal(str(price))
    assert decimal_of_double(np.float64(price)) == Decimal(str(price))
