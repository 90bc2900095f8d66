"""What a trader must see after a round trip, whatever protocol carried it.

Every protocol's journey (REST, gRPC, gRPC-Web) records the gateway's answers as
proto3 JSON, the REST wire format, and checks them here: one definition of
"right", to the cent.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

CENT = Decimal("0.01")

Json = dict[str, Any]
OPENING_CASH = Decimal("100000")


@dataclass(frozen=True)
class RoundTrip:
    """A market buy of `qty` then a market sell of the same, with what was read between."""

    symbol: str
    qty: Decimal
    account_before: Json
    buy: Json  # the buy order, once filled
    position: Json  # the position after the buy
    account_after_buy: Json
    sell: Json  # the sell order, once filled
    account_after_sell: Json
    activities: list[Json]


def money(value: str) -> Decimal:
    assert isinstance(value, str) and value, f"money must be a decimal string, not {value!r}"
    return Decimal(value)


def assert_quote_is_live(quote: Json, symbol: str) -> None:
    assert quote["symbol"] == symbol
    assert 0 < quote["bid"] < quote["ask"], quote
    assert quote["timestamp"], quote


def assert_bars(bars: Json, symbol: str, timeframe: str) -> None:
    assert bars["bars"], f"no {timeframe} bars for {symbol}"
    for bar in bars["bars"]:
        assert (bar["symbol"], bar["timeframe"]) == (symbol, timeframe)
        assert bar["low"] <= min(bar["open"], bar["close"]) <= max(bar["open"], bar["close"])
        assert max(bar["open"], bar["close"]) <= bar["high"]


def assert_filled(order: Json, side: str, qty: Decimal, symbol: str) -> Decimal:
    """The order filled completely; returns its fill price."""
    assert order["status"] == "ORDER_STATUS_FILLED", order
    assert (order["side"], order["symbol"]) == (side, symbol)
    assert money(order["filledQty"]) == qty
    assert order["filledAt"], order
    return money(order["filledAvgPrice"])


def assert_round_trip(trip: RoundTrip) -> None:
    before = trip.account_before
    assert money(before["cash"]) == OPENING_CASH
    assert money(before["buyingPower"]) == OPENING_CASH
    assert money(before["realizedPl"]) == 0

    buy_price = assert_filled(trip.buy, "ORDER_SIDE_BUY", trip.qty, trip.symbol)
    buy_commission = money(trip.buy["commission"])
    cost = trip.qty * buy_price

    position = trip.position
    assert position["symbol"] == trip.symbol
    assert position["side"] == "POSITION_SIDE_LONG"
    assert money(position["qty"]) == trip.qty
    assert money(position["avgEntryPrice"]) == buy_price
    assert money(position["costBasis"]) == cost
    # Market value is money, so it is rounded to the cent (half up) even when the
    # mark is a half-cent midpoint.
    unrounded_value = trip.qty * money(position["currentPrice"])
    assert money(position["marketValue"]) == unrounded_value.quantize(CENT, ROUND_HALF_UP)
    assert money(position["unrealizedPl"]) == money(position["marketValue"]) - cost

    after_buy = trip.account_after_buy
    cash_after_buy = OPENING_CASH - cost - buy_commission
    assert money(after_buy["cash"]) == cash_after_buy
    assert money(after_buy["reservedBuyingPower"]) == 0
    assert money(after_buy["buyingPower"]) == cash_after_buy
    assert money(after_buy["equity"]) == cash_after_buy + money(after_buy["longMarketValue"])
    assert money(after_buy["realizedPl"]) == 0

    sell_price = assert_filled(trip.sell, "ORDER_SIDE_SELL", trip.qty, trip.symbol)
    sell_commission = money(trip.sell["commission"])
    realized = trip.qty * (sell_price - buy_price) - buy_commission - sell_commission
    after_sell = trip.account_after_sell
    assert money(after_sell["realizedPl"]) == realized
    assert money(after_sell["cash"]) == OPENING_CASH + realized
    assert money(after_sell["equity"]) == OPENING_CASH + realized
    assert money(after_sell["buyingPower"]) == OPENING_CASH + realized
    assert money(after_sell["longMarketValue"]) == 0

    fills = {a["orderId"]: a for a in trip.activities if a["activityType"] == "ACTIVITY_TYPE_FILL"}
    assert set(fills) == {trip.buy["id"], trip.sell["id"]}
    bought, sold = fills[trip.buy["id"]], fills[trip.sell["id"]]
    assert (money(bought["qty"]), money(bought["price"])) == (trip.qty, buy_price)
    assert money(bought["netAmount"]) == -cost - buy_commission
    assert (money(sold["qty"]), money(sold["price"])) == (trip.qty, sell_price)
    assert money(sold["netAmount"]) == trip.qty * sell_price - sell_commission
    deposits = [a for a in trip.activities if a["activityType"] == "ACTIVITY_TYPE_DEPOSIT"]
    assert [money(d["netAmount"]) for d in deposits] == [OPENING_CASH]


def assert_order_events(events: list[Json], trip: RoundTrip) -> None:
    """The order-update stream showed each order's NEW and its FILL, in sequence order."""
    seen = [(e["order"]["id"], e["type"]) for e in events]
    for order in (trip.buy, trip.sell):
        assert (order["id"], "ORDER_EVENT_TYPE_NEW") in seen, seen
        assert (order["id"], "ORDER_EVENT_TYPE_FILL") in seen, seen
    fills = {e["order"]["id"]: e["fill"] for e in events if e["type"] == "ORDER_EVENT_TYPE_FILL"}
    assert money(fills[trip.buy["id"]]["price"]) == money(trip.buy["filledAvgPrice"])
    assert money(fills[trip.sell["id"]]["price"]) == money(trip.sell["filledAvgPrice"])
    sequences = [int(e["sequence"]) for e in events]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
    assert {e["accountId"] for e in events} == {trip.buy["accountId"]}


def assert_quote_stream(batches: list[Json], symbol: str) -> None:
    quotes = [q for batch in batches for q in batch["quotes"]]
    assert quotes, "the quote stream sent only heartbeats"
    assert {q["symbol"] for q in quotes} == {symbol}
    sequences = [int(q["sequence"]) for q in quotes]
    assert sequences == sorted(sequences)
