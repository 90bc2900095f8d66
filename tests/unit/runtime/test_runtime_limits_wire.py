"""Limit overrides read off the wire: what a message pins, and nothing it leaves out."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cift.backtest.v1 import backtest_pb2
from cift.risk.v1 import risk_pb2
from cift.runtime.errors import InvalidArgument
from cift.runtime.limits_wire import limit_overrides_from_wire


def test_a_patch_pins_exactly_the_fields_it_sends_zero_and_false_included() -> None:
    patch = risk_pb2.UpdateRiskLimitsRequest(
        account_id="acct", max_order_qty="2.5", max_open_orders=0, allow_short=False
    )
    assert limit_overrides_from_wire(patch).pinned() == {
        "max_order_qty": Decimal("2.5"),
        "max_open_orders": 0,
        "allow_short": False,
    }


def test_a_bad_decimal_is_named_with_where_the_limits_sit() -> None:
    limits = backtest_pb2.BacktestRiskLimits(max_order_notional="1e3")
    with pytest.raises(InvalidArgument, match=r"^limits\.max_order_notional must be a plain"):
        limit_overrides_from_wire(limits, field_prefix="limits.")
