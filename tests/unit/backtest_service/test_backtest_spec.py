"""What a backtest request must satisfy before the service stores anything."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from cift.runtime.errors import InvalidArgument
from services.backtest.spec import build_spec, parse_symbols

NOW = datetime(2026, 12, 5, tzinfo=UTC)


def spec(**changes: Any) -> Any:
    values: dict[str, Any] = {
        "strategy": "sma_cross",
        "params": {"fast": 10.0},
        "symbol": "",
        "symbols": ["goog"],
        "timeframe": "",
        "start": datetime(2020, 1, 1, tzinfo=UTC),
        "end": None,
        "cash": "",
        "commission": "",
        "engine": "",
        "now": NOW,
    }
    values.update(changes)
    return build_spec(**values)


def test_defaults_fill_what_the_request_leaves_out() -> None:
    built = spec()
    assert built.symbols == ("GOOG",)
    assert (built.timeframe, built.engine, built.end) == ("1Day", "vector", NOW)
    assert (built.cash, built.commission) == (Decimal("10000"), Decimal(0))
    assert built.params == {"fast": 10.0}


def test_symbol_and_comma_separated_symbols_merge_upper_case_each_once() -> None:
    assert parse_symbols("aapl", ["MSFT, aapl", "goog"]) == ("AAPL", "MSFT", "GOOG")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"symbols": []}, "Name the symbol"),
        ({"symbols": ["a b"]}, "is not a symbol"),
        ({"symbols": [f"S{n}" for n in range(21)]}, "at most 20 symbols"),
        ({"timeframe": "2Min"}, "timeframe must be one of"),
        ({"start": None}, "start is required"),
        ({"end": datetime(2019, 1, 1, tzinfo=UTC)}, "The range is empty"),
        ({"end": datetime(2020, 1, 1, tzinfo=UTC)}, "The range is empty"),
        ({"cash": "ten"}, "cash must be a plain decimal"),
        ({"commission": "NaN"}, "commission must be a plain decimal"),
        ({"engine": "quantum"}, "engine must be one of vector, event"),
    ],
)
def test_bad_requests_name_their_problem(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        spec(**changes)
