"""A trader's whole session over REST/JSON through the gateway, as a script or app would run it."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from tests.e2e.e2e_client import (
    PASSWORD,
    SYMBOL,
    Rest,
    Trader,
    eventually,
    market_order,
    new_email,
)
from tests.e2e.e2e_journey import (
    RoundTrip,
    assert_bars,
    assert_order_events,
    assert_quote_is_live,
    assert_quote_stream,
    assert_round_trip,
)

pytestmark = pytest.mark.integration

Json = dict[str, Any]
QTY = "10"


def filled(rest: Rest, token: str, order_id: str) -> Json:
    def probe() -> Json | None:
        order: Json = rest.ok("GET", f"/v1/orders/{order_id}", token=token)["order"]
        return order if order["status"] == "ORDER_STATUS_FILLED" else None

    found: Json = eventually(probe, f"order {order_id} to fill")
    return found


def market(rest: Rest, token: str, side: str, qty: str = QTY) -> Json:
    order: Json = rest.ok(
        "POST",
        "/v1/orders",
        token=token,
        json=market_order(side, qty),
    )["order"]
    return filled(rest, token, order["id"])


def test_trader_registers_trades_a_round_trip_and_signs_out_over_rest(rest: Rest) -> None:
    email = new_email("rest")
    registered = rest.ok(
        "POST",
        "/v1/auth/register",
        json={"email": email, "password": PASSWORD, "displayName": "REST trader"},
    )
    assert registered["user"]["email"] == email
    assert registered["user"]["scopes"] == ["read", "trade"]
    assert Decimal(registered["openingCash"]) == Decimal("100000")
    login = rest.ok("POST", "/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login["tokenType"] == "Bearer" and login["expiresIn"] > 0
    token = login["accessToken"]
    me = rest.ok("GET", "/v1/auth/me", token=token)["user"]
    assert (me["id"], me["accountId"]) == (
        registered["user"]["id"],
        registered["user"]["accountId"],
    )

    quote = rest.ok("GET", f"/v1/quotes/{SYMBOL}", token=token)["quote"]
    assert_quote_is_live(quote, SYMBOL)
    both = rest.ok("GET", "/v1/quotes", token=token, params={"symbols": f"{SYMBOL},MSFT"})
    assert {s: q["symbol"] for s, q in both["quotes"].items()} == {SYMBOL: SYMBOL, "MSFT": "MSFT"}
    bars = eventually(
        lambda: (
            b
            if (
                b := rest.ok("GET", f"/v1/bars/{SYMBOL}", token=token, params={"timeframe": "1Sec"})
            )["bars"]
            else None
        ),
        "the first 1Sec bar",
    )
    assert_bars(bars, SYMBOL, "1Sec")

    # Order updates arrive as newline-delimited JSON while the orders are placed.
    stream = rest.call(
        "POST",
        "/cift.execution.v1.ExecutionService/StreamOrderUpdates",
        token=token,
        json={},
        timeout_s=30,
        stream=True,
    )
    assert stream.status_code == 200, stream.text
    account_before = rest.ok("GET", "/v1/account", token=token)["account"]
    buy = market(rest, token, "ORDER_SIDE_BUY")
    position = rest.ok("GET", f"/v1/positions/{SYMBOL}", token=token)["position"]
    account_after_buy = rest.ok("GET", "/v1/account", token=token)["account"]
    sell = market(rest, token, "ORDER_SIDE_SELL")
    account_after_sell = rest.ok("GET", "/v1/account", token=token)["account"]
    activities = rest.ok("GET", "/v1/account/activities", token=token)["activities"]
    trip = RoundTrip(
        SYMBOL,
        Decimal(QTY),
        account_before,
        buy,
        position,
        account_after_buy,
        sell,
        account_after_sell,
        activities,
    )
    assert_round_trip(trip)
    lines = stream.iter_lines()
    events = [json.loads(next(lines))["event"] for _ in range(4)]
    stream.close()
    assert_order_events(events, trip)

    flat = rest.call("GET", f"/v1/positions/{SYMBOL}", token=token)
    assert flat.status_code == 404
    assert flat.json()["code"] == 5  # NOT_FOUND: no position once flat
    assert rest.ok("GET", "/v1/positions", token=token)["positions"] == []
    closed = rest.ok("GET", "/v1/orders", token=token, params={"status": "closed"})["orders"]
    assert [o["id"] for o in closed] == [sell["id"], buy["id"]]  # newest first

    refreshed = rest.ok("POST", "/v1/auth/refresh", json={"refreshToken": login["refreshToken"]})
    assert refreshed["accessToken"] != token
    assert rest.ok("GET", "/v1/auth/me", token=refreshed["accessToken"])["user"]["email"] == email
    spent = rest.call("POST", "/v1/auth/refresh", json={"refreshToken": login["refreshToken"]})
    assert spent.status_code == 401

    rest.ok(
        "POST",
        "/v1/auth/logout",
        token=refreshed["accessToken"],
        json={"refreshToken": refreshed["refreshToken"]},
    )
    after_logout = rest.call(
        "POST", "/v1/auth/refresh", json={"refreshToken": refreshed["refreshToken"]}
    )
    assert after_logout.status_code == 401


def test_quotes_stream_over_rest_as_one_json_message_per_line(rest: Rest, trader: Trader) -> None:
    stream = rest.call(
        "POST",
        "/cift.marketdata.v1.MarketDataService/StreamQuotes",
        token=trader.access_token,
        json={"symbols": [SYMBOL]},
        timeout_s=30,
        stream=True,
    )
    assert stream.status_code == 200, stream.text
    lines = stream.iter_lines()
    batches = [json.loads(next(lines)) for _ in range(3)]
    stream.close()
    assert_quote_stream([b for b in batches if b["quotes"]], SYMBOL)


def test_api_key_reads_with_its_scopes_and_stops_working_once_revoked(
    rest: Rest, trader: Trader
) -> None:
    created = rest.ok(
        "POST",
        "/v1/auth/api-keys",
        token=trader.access_token,
        json={"name": "reporting", "scopes": ["read"]},
    )
    key = created["key"]
    assert created["apiKey"]["scopes"] == ["read"]
    account = rest.ok("GET", "/v1/account", api_key=key)["account"]
    assert account["id"] == trader.account_id
    assert rest.ok("GET", f"/v1/quotes/{SYMBOL}", api_key=key)["quote"]["symbol"] == SYMBOL
    refused = rest.call("POST", "/v1/orders", api_key=key, json=market_order())
    assert refused.status_code == 403
    assert refused.json()["code"] == 7  # PERMISSION_DENIED: the key lacks "trade"
    listed = rest.ok("GET", "/v1/auth/api-keys", token=trader.access_token)["apiKeys"]
    assert [k["id"] for k in listed] == [created["apiKey"]["id"]]

    rest.ok("DELETE", f"/v1/auth/api-keys/{created['apiKey']['id']}", token=trader.access_token)
    revoked = rest.call("GET", "/v1/account", api_key=key)
    assert revoked.status_code == 401
    assert revoked.headers["grpc-status"] == "16"


def test_trade_key_places_orders_for_its_owner(rest: Rest, trader: Trader) -> None:
    key = rest.ok(
        "POST",
        "/v1/auth/api-keys",
        token=trader.access_token,
        json={"name": "bot", "scopes": ["read", "trade"]},
    )["key"]
    order = rest.ok(
        "POST",
        "/v1/orders",
        api_key=key,
        json={**market_order(), "clientOrderId": "bot-1"},
    )["order"]
    assert order["accountId"] == trader.account_id
    again = rest.ok(
        "POST",
        "/v1/orders",
        api_key=key,
        json={**market_order(), "clientOrderId": "bot-1"},
    )["order"]
    assert again["id"] == order["id"]  # the client order id made the retry harmless


def test_order_update_stream_is_established_before_any_order_exists(
    rest: Rest, trader: Trader
) -> None:
    """A REST client gets the stream's 200 as soon as it is subscribed, not with the first
    event, so it knows it will see the orders it is about to place (execution sends its
    gRPC headers at once; the transcoder answers only when they arrive)."""
    stream = rest.call(
        "POST",
        "/cift.execution.v1.ExecutionService/StreamOrderUpdates",
        token=trader.access_token,
        json={},
        timeout_s=5,
        stream=True,
    )
    assert stream.status_code == 200
    stream.close()
