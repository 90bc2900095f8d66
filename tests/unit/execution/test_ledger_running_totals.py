"""The ledger's running cost totals equal the sums over its positions, whatever the fills."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from cift.trading.ledger import Ledger, Position
from cift.trading.vocabulary import Side

D = Decimal

fills = st.lists(
    st.tuples(
        st.sampled_from(["AAPL", "MSFT", "TSLA"]),
        st.sampled_from([Side.BUY, Side.SELL]),
        st.decimals(min_value=D("0.001"), max_value=D(500), places=3),
        st.decimals(min_value=D("0.01"), max_value=D(1000), places=2),
    ),
    max_size=60,
)


def sums(ledger: Ledger) -> tuple[Decimal, Decimal]:
    bases = [p.cost_basis for p in ledger.positions.values()]
    return sum(bases, D(0)), sum((abs(b) for b in bases), D(0))


@given(fills)
def test_net_and_gross_cost_track_the_positions_after_every_fill(
    steps: list[tuple[str, Side, Decimal, Decimal]],
) -> None:
    ledger = Ledger(cash=D(100000))
    for symbol, side, qty, price in steps:
        ledger.apply_fill(symbol, side, qty, price)
        assert (ledger.net_cost, ledger.gross_cost) == sums(ledger)


def test_a_ledger_opened_with_positions_starts_from_their_costs() -> None:
    ledger = Ledger(
        cash=D(1000),
        positions={
            "AAPL": Position("AAPL", D(10), D("1500.00")),
            "MSFT": Position("MSFT", D(-4), D("-1200.50")),
        },
    )
    assert (ledger.net_cost, ledger.gross_cost) == (D("299.50"), D("2700.50"))
    ledger.apply_fill("MSFT", Side.BUY, D(4), D(300))
    assert (ledger.net_cost, ledger.gross_cost) == (D("1500.00"), D("1500.00"))
