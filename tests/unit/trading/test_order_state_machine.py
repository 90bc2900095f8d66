"""The order changes state only through its own methods.

Execution's broker used to copy a fill's status in with `dataclasses.replace` and
assign status, reason and reservation directly, past the lifecycle's checks.
These tests pin the methods that replaced that, and an AST rule fails if any
module outside `cift/trading/orders.py` assigns an order's state again.
"""

from __future__ import annotations

import ast
from decimal import Decimal as D
from pathlib import Path

import pytest

from cift.runtime.errors import FailedPrecondition
from cift.trading.orders import Order, OrderStatus
from cift.trading.vocabulary import OrderType, Side, TimeInForce

ROOT = Path(__file__).resolve().parents[3]
STATE_FIELDS = {"status", "reason", "reserved", "replaced_by", "filled_qty", "filled_notional"}
STATE_FIELDS |= {"fill_count", "triggered", "water_mark"}


def an_order(qty: str = "10") -> Order:
    return Order(
        order_id="o-1",
        account_id="a-1",
        symbol="AAPL",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.DAY,
        qty=D(qty),
        notional=None,
        limit_price=D("100"),
        stop_price=None,
        trail_price=None,
        trail_percent=None,
        client_order_id="c-1",
        created_ns=1,
    )


def test_a_new_order_reserves_then_goes_live() -> None:
    order = an_order()
    order.reserve(D("1000.00"))
    order.accept(2)
    assert (order.status, order.reserved, order.updated_ns) == (
        OrderStatus.ACCEPTED,
        D("1000.00"),
        2,
    )
    with pytest.raises(FailedPrecondition):
        order.reserve(D(1))  # a live order's reservation changes only by fills and closing


def test_closing_releases_the_whole_reservation_once() -> None:
    order = an_order()
    order.reserve(D("1000.00"))
    order.accept(2)
    assert order.close(OrderStatus.CANCELED, 3, "canceled by request") == D("1000.00")
    assert (order.status, order.reason, order.reserved) == (
        OrderStatus.CANCELED,
        "canceled by request",
        D(0),
    )
    with pytest.raises(FailedPrecondition):
        order.close(OrderStatus.EXPIRED, 4)
    with pytest.raises(ValueError):
        an_order().close(OrderStatus.ACCEPTED, 4)


def test_replacing_names_the_successor_and_releases() -> None:
    order = an_order()
    order.reserve(D("500"))
    order.accept(2)
    assert order.replace_by("o-2", 3) == D("500")
    assert (order.status, order.replaced_by, order.reserved) == (OrderStatus.REPLACED, "o-2", D(0))


def test_a_stored_copy_takes_the_engines_totals_and_gives_back_its_share() -> None:
    order = an_order()
    order.reserve(D("1000.00"))
    order.accept(2)
    order.apply_fill(OrderStatus.PARTIALLY_FILLED, D(4), D("400"), 1, 5, released=D("400.00"))
    assert (order.status, order.filled_qty, order.reserved, order.updated_ns) == (
        OrderStatus.PARTIALLY_FILLED,
        D(4),
        D("600.00"),
        5,
    )
    with pytest.raises(FailedPrecondition):  # the same fill twice is refused
        order.apply_fill(OrderStatus.PARTIALLY_FILLED, D(4), D("400"), 1, 6, released=D(0))
    order.apply_fill(OrderStatus.FILLED, D(10), D("1000"), 2, 7, released=D("600.00"))
    assert (order.status, order.reserved) == (OrderStatus.FILLED, D(0))


def test_a_held_leg_is_released_for_what_its_entry_filled() -> None:
    leg = an_order()
    leg.hold(2)
    leg.release(D(3), 4)
    assert (leg.status, leg.qty) == (OrderStatus.ACCEPTED, D(3))
    leg.grow(D(2))
    assert leg.qty == D(5)
    leg.trigger(D("99.5"))
    assert (leg.triggered, leg.water_mark) == (True, D("99.5"))


def state_assignments(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            elements = target.elts if isinstance(target, ast.Tuple) else [target]
            found += [
                f"{path.relative_to(ROOT)}:{e.lineno} .{e.attr}"
                for e in elements
                if isinstance(e, ast.Attribute)
                and e.attr in STATE_FIELDS
                and not (isinstance(e.value, ast.Name) and e.value.id == "self")
            ]
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "replace"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "dataclasses"
            and any(k.arg in STATE_FIELDS for k in node.keywords)
        ):
            found.append(f"{path.relative_to(ROOT)}:{node.func.lineno} dataclasses.replace")
    return found


@pytest.mark.parametrize("package", ["cift/trading", "services/execution"])
def test_no_module_assigns_an_orders_state_but_the_order(package: str) -> None:
    offending = [
        hit
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != ROOT / "cift" / "trading" / "orders.py"
        for hit in state_assignments(path)
    ]
    assert not offending, offending


def test_the_rule_sees_a_bypass() -> None:
    bad = ROOT / "build" / "state_rule_probe.py"
    bad.parent.mkdir(exist_ok=True)
    bad.write_text("order.status, order.reserved = 1, 2\nx = dataclasses.replace(o, reason='')\n")
    try:
        assert len(state_assignments(bad)) == 3
    finally:
        bad.unlink()
