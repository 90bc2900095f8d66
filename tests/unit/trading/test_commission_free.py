"""A free commission model's fills cost `NO_COMMISSION`, exactly what its arithmetic gives.

`FillPricer` binds `no_commission` for a model whose rates are both positive zero;
for any fill that must equal `CommissionModel.commission`, value and exponent.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from cift.trading.fill_model import (
    NO_COMMISSION,
    CommissionModel,
    FillModel,
    FillPricer,
    no_commission,
)

D = Decimal
zeros = st.sampled_from([D(0), D("0.0"), D("0.000"), D("0E+3")])


@settings(max_examples=300, deadline=None)
@given(
    per_share=zeros,
    bps=zeros,
    qty=st.decimals(min_value=D("0.000000001"), max_value=D(10**9), places=9),
    price=st.decimals(min_value=D("0.000001"), max_value=D(10**6), places=6),
)
def test_a_free_model_charges_what_its_arithmetic_charges(
    per_share: Decimal, bps: Decimal, qty: Decimal, price: Decimal
) -> None:
    model = CommissionModel(per_share=per_share, bps=bps)
    assert model.free
    expected = model.commission(qty, price)
    assert no_commission(qty, price) == expected
    assert str(no_commission(qty, price)) == str(expected) == str(NO_COMMISSION)
    assert FillPricer(FillModel(commission=model)).commission is no_commission


def test_a_model_with_any_rate_or_a_negative_zero_is_not_free() -> None:
    assert not CommissionModel(per_share=D("0.01")).free
    assert not CommissionModel(bps=D(1)).free
    assert not CommissionModel(per_share=D("-0")).free
    assert not CommissionModel(bps=D("-0.0")).free
    model = CommissionModel(bps=D(2))
    assert FillPricer(FillModel(commission=model)).commission == model.commission
