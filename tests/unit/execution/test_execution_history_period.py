"""Portfolio-history periods: a clear INVALID_ARGUMENT for anything but a sane span."""

from __future__ import annotations

import pytest

from cift.runtime.errors import InvalidArgument
from services.execution.adapters.requests import period_days


@pytest.mark.parametrize(
    ("period", "days"), [("1D", 1), ("2W", 14), ("3M", 90), ("1A", 365), ("100A", 36_500)]
)
def test_a_period_is_a_count_of_days_weeks_months_or_years(period: str, days: int) -> None:
    assert period_days(period) == days


def test_a_period_beyond_a_century_is_refused_instead_of_overflowing() -> None:
    """The security probe's finding: period=99999999999D was a server error."""
    with pytest.raises(InvalidArgument, match="at most 100 years"):
        period_days("99999D")
    with pytest.raises(InvalidArgument, match="must be a positive number"):
        period_days("99999999999D")


@pytest.mark.parametrize(
    "period", ["", "D", "0D", "-1D", "1X", "1d", "\u0661D", " 1D", "1.5M", "9" * 5000 + "D"]
)
def test_malformed_periods_are_refused(period: str) -> None:
    with pytest.raises(InvalidArgument, match="period must be"):
        period_days(period)
