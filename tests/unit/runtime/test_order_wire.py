"""Every order word has one proto value, named by buf STANDARD, and decodes back to itself."""

from __future__ import annotations

from enum import StrEnum

import pytest

from cift.execution.v1 import orders_pb2
from cift.runtime.order_wire import (
    CLASS_FROM_PB,
    CLASS_TO_PB,
    SIDE_FROM_PB,
    SIDE_TO_PB,
    STATUS_TO_PB,
    TIF_FROM_PB,
    TIF_TO_PB,
    TYPE_FROM_PB,
    TYPE_TO_PB,
    enum_to_pb,
)
from cift.trading.orders import OrderClass, OrderStatus
from cift.trading.vocabulary import OrderType, Side, TimeInForce


def test_the_wire_names_are_the_words_behind_their_enum_prefix() -> None:
    assert SIDE_TO_PB[Side.SELL] == orders_pb2.ORDER_SIDE_SELL
    assert TYPE_TO_PB[OrderType.TRAILING_STOP] == orders_pb2.ORDER_TYPE_TRAILING_STOP
    assert TIF_TO_PB[TimeInForce.OPG] == orders_pb2.TIME_IN_FORCE_OPG
    assert CLASS_TO_PB[OrderClass.OCO] == orders_pb2.ORDER_CLASS_OCO
    assert STATUS_TO_PB[OrderStatus.PARTIALLY_FILLED] == orders_pb2.ORDER_STATUS_PARTIALLY_FILLED


@pytest.mark.parametrize(
    ("vocabulary", "to_pb", "from_pb"),
    [
        (Side, SIDE_TO_PB, SIDE_FROM_PB),
        (OrderType, TYPE_TO_PB, TYPE_FROM_PB),
        (TimeInForce, TIF_TO_PB, TIF_FROM_PB),
        (OrderClass, CLASS_TO_PB, CLASS_FROM_PB),
    ],
    ids=["side", "type", "time_in_force", "order_class"],
)
def test_every_word_has_a_wire_value_that_decodes_back(
    vocabulary: type[StrEnum], to_pb: dict[StrEnum, int], from_pb: dict[int, StrEnum]
) -> None:
    assert set(to_pb) == set(vocabulary)
    assert 0 not in to_pb.values()  # no word is sent as the _UNSPECIFIED value
    assert all(from_pb[to_pb[word]] is word for word in vocabulary)


def test_every_status_has_its_own_wire_value() -> None:
    assert set(STATUS_TO_PB) == set(OrderStatus)
    assert len(set(STATUS_TO_PB.values())) == len(OrderStatus)


def test_unspecified_wire_values_decode_to_nothing_but_a_simple_order() -> None:
    assert orders_pb2.ORDER_SIDE_UNSPECIFIED not in SIDE_FROM_PB
    assert orders_pb2.ORDER_TYPE_UNSPECIFIED not in TYPE_FROM_PB
    assert orders_pb2.TIME_IN_FORCE_UNSPECIFIED not in TIF_FROM_PB
    assert CLASS_FROM_PB[orders_pb2.ORDER_CLASS_UNSPECIFIED] is OrderClass.SIMPLE


def test_a_word_the_proto_lacks_is_refused_when_the_map_is_built() -> None:
    class WiderSide(StrEnum):
        BUY = "buy"
        SELL = "sell"
        SELL_SHORT = "sell_short"

    with pytest.raises(ValueError, match="ORDER_SIDE_SELL_SHORT"):
        enum_to_pb(WiderSide, orders_pb2.OrderSide, "ORDER_SIDE_")
