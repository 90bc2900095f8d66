"""Wire to domain: malformed requests are INVALID_ARGUMENT, unacceptable ones reach the rules."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cift.execution.v1 import orders_pb2
from cift.marketdata.v1 import marketdata_pb2
from cift.risk.v1 import risk_pb2, rules_pb2
from cift.runtime.errors import InvalidArgument
from cift.trading.pretrade.rules import Reason
from cift.trading.vocabulary import OrderType, Side
from services.risk import codec


def request(**changes: object) -> risk_pb2.CheckOrderRequest:
    base: dict[str, object] = {
        "request_id": "r1",
        "account_id": "acct-1",
        "symbol": "aapl",
        "side": orders_pb2.ORDER_SIDE_BUY,
        "type": orders_pb2.ORDER_TYPE_LIMIT,
        "time_in_force": orders_pb2.TIME_IN_FORCE_DAY,
        "qty": "10",
        "limit_price": "100.5",
        "buying_power": "5000",
    }
    base.update(changes)
    return risk_pb2.CheckOrderRequest(**base)  # type: ignore[arg-type]


def test_well_formed_request_decodes_to_exact_decimals() -> None:
    order = codec.order_from_wire(request())
    assert order.symbol == "AAPL"
    assert order.side is Side.BUY and order.order_type is OrderType.LIMIT
    assert order.limit_price == Decimal("100.5")
    figures = codec.figures_from_wire(request())
    assert figures.buying_power == Decimal(5000)
    assert figures.position_qty is None and figures.open_buy_qty == 0


def test_zero_quantity_is_left_for_the_rules() -> None:
    assert codec.order_from_wire(request(qty="0")).qty == 0


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"qty": "ten"}, "qty"),
        ({"limit_price": "NaN"}, "limit_price"),
        ({"qty": "1e999"}, "qty"),
        ({"side": orders_pb2.ORDER_SIDE_UNSPECIFIED}, "side"),
        ({"type": orders_pb2.ORDER_TYPE_UNSPECIFIED}, "type"),
        ({"time_in_force": orders_pb2.TIME_IN_FORCE_UNSPECIFIED}, "time_in_force"),
        ({"symbol": ""}, "symbol"),
        ({"symbol": "A A; DROP"}, "symbol"),
        ({"account_id": ""}, "account_id"),
    ],
)
def test_malformed_order_is_invalid_argument(changes: dict[str, object], fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=fragment):
        codec.order_from_wire(request(**changes))


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"buying_power": ""}, "buying_power is required"),
        ({"open_buy_qty": "-1"}, "open_buy_qty must not be negative"),
        ({"order_cost": "abc"}, "order_cost"),
        ({"open_order_count": -1}, "open_order_count"),
    ],
)
def test_malformed_account_figures_are_invalid_argument(
    changes: dict[str, object], fragment: str
) -> None:
    with pytest.raises(InvalidArgument, match=fragment):
        codec.figures_from_wire(request(**changes))


def test_every_reason_has_a_wire_code() -> None:
    assert codec.REASONS_TO_WIRE[Reason.PRICE_COLLAR] == rules_pb2.REASON_CODE_PRICE_COLLAR
    assert len(set(codec.REASONS_TO_WIRE.values())) == len(Reason)


def test_patch_decodes_only_present_fields_and_resets() -> None:
    wire = risk_pb2.UpdateRiskLimitsRequest(
        account_id="a", max_order_qty="5", allow_short=False, reset_fields=["max_open_orders"]
    )
    changes, reset = codec.overrides_from_wire(wire)
    assert changes.pinned() == {"max_order_qty": Decimal(5), "allow_short": False}
    assert reset == frozenset({"max_open_orders"})


def test_quote_doubles_become_the_decimals_the_feed_meant() -> None:
    quote = codec.quote_from_wire(marketdata_pb2.Quote(symbol="AAPL", bid=100.1, ask=100.2), 7)
    assert quote.bid == Decimal("100.1") and quote.ask == Decimal("100.2")
    assert quote.last == 0 and quote.ts_ns == 7
