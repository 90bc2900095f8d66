"""A paper fill explains itself through the gateway: GET /v1/orders/{id} and the activities.

The fill is caused by a quote this test injects on `marketdata.ticks.v1` with a
known sequence, so the explanation can be checked against the tick itself.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from cift.execution.v1 import orders_pb2
from tests.integration.execution.exec_stack import CENT, Mesh, price
from tests.integration.execution.test_execution_order_classes import http

pytestmark = pytest.mark.integration

D = Decimal


async def test_a_fill_names_its_quote_and_model_in_the_order_and_the_activities(
    mesh: Mesh,
) -> None:
    trader = await mesh.trader()
    base = mesh.info.gateway_url
    assert base is not None
    quote = await mesh.quote(trader, "KO")
    limit = price(quote.bid, "0.95")  # rests until the injected quote reaches it
    order = await mesh.submit(trader, symbol="KO", qty="4", limit_price=str(limit))
    bid, ask = limit - 3 * CENT, limit - CENT

    async def filled() -> orders_pb2.Order | None:
        placed = await mesh.order(trader, order.id)
        return placed if placed.status == orders_pb2.ORDER_STATUS_FILLED else None

    _, sequences = await mesh.quote_until(trader, "KO", bid, ask, filled)

    status, reply = await asyncio.to_thread(
        http, "GET", f"{base}/v1/orders/{order.id}", trader.token
    )
    assert status == 200, reply
    (fill,) = reply["fills"]
    assert (fill["orderId"], D(fill["qty"]), D(fill["price"])) == (order.id, D(4), ask)
    why = fill["explanation"]
    assert why["priceSource"] == "FILL_PRICE_SOURCE_QUOTE"
    # The quote that filled it (one that came late may have been sent again); int64
    # reads as a string in JSON.
    assert why["tickSequence"] in {str(sequence) for sequence in sequences}
    assert (D(why["bid"]), D(why["ask"])) == (bid, ask)
    assert (D(why["bidSize"]), D(why["askSize"])) == (D(1000), D(1000))
    assert (D(why["marketPrice"]), D(why["limitPrice"])) == (ask, limit)
    # The stack's default model: no slippage, no commission, not limited to displayed size.
    assert (D(why["slippageBps"]), D(why["commissionPerShare"]), D(why["commissionBps"])) == (
        D(0),
    ) * 3
    # The gateway prints zero values: a quote fill has no trade, no displayed-size cap.
    assert (why["displayedSizeOnly"], why["availableQty"], why["tradePrice"]) == (False, "", "")

    status, reply = await asyncio.to_thread(
        http,
        "GET",
        f"{base}/v1/account/activities?activityTypes=ACTIVITY_TYPE_FILL",
        trader.token,
    )
    assert status == 200, reply
    (activity,) = reply["activities"]
    assert activity["id"] == fill["id"]
    assert activity["fillExplanation"] == why
