"""The findings of the independent security probe (issue 19), each as the request that found it.

Every test sends, through the gateway, what the probe sent, and asserts what a careful
server answers: a 4xx with a message a person can act on, never a 5xx, never a request
quietly read as something else.
"""

from __future__ import annotations

import re

import pytest

from tests.e2e.e2e_client import PASSWORD, SYMBOL, Rest, Trader, new_email

pytestmark = pytest.mark.integration


def refused(response_status: int, body: dict[str, object], status: int, *phrases: str) -> None:
    assert response_status == status, body
    message = str(body.get("message", ""))
    for phrase in phrases:
        assert phrase in message, message


@pytest.mark.parametrize(
    ("path", "params", "phrase"),
    [
        ("/v1/orders", {"symbols": "\x00"}, "symbols[0] must not contain a NUL"),
        ("/v1/trades/AAPL", {"start": "0695-01-08T08:32:16Z"}, "start must lie between"),
        ("/v1/trades/AAPL", {"end": "7216-06-24T03:55:19Z"}, "end must lie between"),
        (
            "/v1/bars/AAPL",
            {"timeframe": "1Day", "start": "0002-06-30T22:54:56Z"},
            "start must lie between",
        ),
        ("/v1/account/portfolio/history", {"period": "99999999999D"}, "period must be"),
        ("/v1/account/portfolio/history", {"period": "99999D"}, "at most 100 years"),
    ],
)
def test_input_no_service_can_take_is_a_400_naming_the_field(
    rest: Rest, trader: Trader, path: str, params: dict[str, str], phrase: str
) -> None:
    response = rest.call("GET", path, token=trader.access_token, params=params)
    refused(response.status_code, response.json(), 400, phrase)


def test_a_nul_in_a_path_segment_is_a_400(rest: Rest, trader: Trader) -> None:
    response = rest.call("DELETE", "/v1/positions/%00", token=trader.access_token)
    refused(response.status_code, response.json(), 400, "symbol must not contain a NUL")


def test_a_nul_in_the_login_email_is_a_400_not_a_server_error(rest: Rest) -> None:
    response = rest.call(
        "POST", "/v1/auth/login", json={"email": "a\u0000b@example.com", "password": PASSWORD}
    )
    refused(response.status_code, response.json(), 400, "email must not contain a NUL")


@pytest.mark.parametrize("qty", ["1_0", "\u0661", " 1 ", "+1", "1e2"])
def test_an_order_quantity_that_is_not_a_plain_decimal_is_refused(
    rest: Rest, trader: Trader, qty: str
) -> None:
    response = rest.call(
        "POST",
        "/v1/orders",
        token=trader.access_token,
        json={
            "symbol": SYMBOL,
            "side": "ORDER_SIDE_BUY",
            "type": "ORDER_TYPE_MARKET",
            "timeInForce": "TIME_IN_FORCE_DAY",
            "qty": qty,
        },
    )
    refused(response.status_code, response.json(), 400, "qty must be a plain decimal string")
    assert rest.ok("GET", "/v1/orders", token=trader.access_token, params={"status": "all"}) == {
        "orders": [],
        "nextPageToken": "",
    }


def _order(**extra: object) -> dict[str, object]:
    return {
        "symbol": SYMBOL,
        "side": "ORDER_SIDE_BUY",
        "type": "ORDER_TYPE_MARKET",
        "timeInForce": "TIME_IN_FORCE_DAY",
        "qty": "1",
        **extra,
    }


def test_an_unknown_json_field_is_refused_naming_it(rest: Rest, trader: Trader) -> None:
    response = rest.call(
        "POST", "/v1/orders", token=trader.access_token, json=_order(accountId="someone-else")
    )
    refused(response.status_code, response.json(), 400, 'unknown field "accountId"')
    orders = rest.ok("GET", "/v1/orders", token=trader.access_token, params={"status": "all"})
    assert orders["orders"] == []


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        # A field escaped in JSON is still the field it spells.
        ("POST", "/v1/orders", '{"symbol":"AAPL","\\u0061ccountId":"x"}', "accountId"),
        (
            "POST",
            "/v1/orders",
            '{"symbol":"AAPL","qty":"1","takeProfit":{"limitPrice":"1","limitPrise":"2"}}',
            "takeProfit.limitPrise",
        ),
        (
            "PATCH",
            "/v1/orders/00000000-0000-0000-0000-000000000000",
            '{"limitPrise":"1"}',
            "limitPrise",
        ),
        ("POST", "/v1/auth/api-keys", '{"name":"k","scope":["trade"]}', "scope"),
        (
            "POST",
            "/cift.marketdata.v1.MarketDataService/ExportBars",
            '{"symbols":["AAPL","]}{\\\\\\"",[]],"timeframe":"1Min","timeFrame":"1Day"}',
            "timeFrame",
        ),
        (
            "POST",
            "/v1/backtests",
            '{"strategy":"sma_cross","params":{"fast":5},"cash2":"1"}',
            "cash2",
        ),
        (
            "POST",
            "/cift.execution.v1.ExecutionService/StreamOrderUpdates",
            '{"resumeAfterSequence":"0","follow":true}',
            "follow",
        ),
    ],
)
def test_unknown_fields_are_refused_on_every_rest_route_with_a_body(
    rest: Rest, trader: Trader, method: str, path: str, body: str, field: str
) -> None:
    response = rest.session.request(
        method,
        rest.base_url + path,
        data=body.encode(),
        headers={
            "authorization": f"Bearer {trader.access_token}",
            "content-type": "application/json",
        },
        timeout=10,
    )
    refused(response.status_code, response.json(), 400, f'unknown field "{field}"')


def test_an_unknown_field_on_the_public_login_route_is_refused(rest: Rest) -> None:
    response = rest.call(
        "POST",
        "/v1/auth/login",
        json={"email": new_email("x"), "password": PASSWORD, "remember": 1},
    )
    refused(response.status_code, response.json(), 400, 'unknown field "remember"')


def test_known_fields_pass_under_json_and_proto_names(rest: Rest, trader: Trader) -> None:
    """Free-form values (backtest params), escapes in values and proto (snake_case) names
    are all what the transcoder reads, so none of them is refused."""
    placed = rest.ok(
        "POST",
        "/v1/orders",
        token=trader.access_token,
        json={
            "symbol": SYMBOL,
            "side": "ORDER_SIDE_BUY",
            "type": "ORDER_TYPE_MARKET",
            "time_in_force": "TIME_IN_FORCE_DAY",
            "qty": "1",
            "client_order_id": 'quote"brace}{\\',
        },
    )
    assert placed["order"]["clientOrderId"] == 'quote"brace}{\\'
    orders = rest.ok("GET", "/v1/orders", token=trader.access_token, params={"status": "all"})
    assert [order["id"] for order in orders["orders"]] == [placed["order"]["id"]]


def _preflight(rest: Rest, origin: str) -> dict[str, str]:
    response = rest.session.options(
        rest.base_url + "/v1/orders",
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type",
        },
        timeout=10,
    )
    assert response.status_code == 200
    return {key.lower(): value for key, value in response.headers.items()}


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "null", "http://127.0.0.1.evil.example"]
)
def test_a_preflight_from_an_origin_not_configured_is_not_allowed(rest: Rest, origin: str) -> None:
    assert "access-control-allow-origin" not in _preflight(rest, origin)


def test_the_gateways_own_origin_is_allowed(rest: Rest) -> None:
    own = rest.base_url
    assert _preflight(rest, own)["access-control-allow-origin"] == own


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/cift.execution.v1.ExecutionService/SubmitOrder", "application/grpc"),
        ("/cift.execution.v1.ExecutionService/GetAccount", "application/grpc-web+proto"),
        ("/v1/orders", "application/json"),
    ],
)
def test_options_without_credential_is_refused_unless_a_cors_preflight(
    rest: Rest, path: str, content_type: str
) -> None:
    response = rest.session.options(
        rest.base_url + path, headers={"content-type": content_type}, timeout=10
    )
    # A native gRPC caller is refused the gRPC way: HTTP 200 carrying grpc-status 16.
    assert response.status_code == (200 if content_type == "application/grpc" else 401)
    assert response.headers["grpc-status"] == "16", response.headers


def test_an_api_key_cannot_create_api_keys_through_the_gateway(rest: Rest, trader: Trader) -> None:
    parent = rest.ok(
        "POST",
        "/v1/auth/api-keys",
        token=trader.access_token,
        json={"name": "parent", "scopes": ["read", "trade"]},
    )["key"]
    child = rest.call(
        "POST", "/v1/auth/api-keys", api_key=parent, json={"name": "child", "scopes": ["read"]}
    )
    refused(child.status_code, child.json(), 403, "An API key cannot create API keys")
    keys = rest.ok("GET", "/v1/auth/api-keys", token=trader.access_token)["apiKeys"]
    assert [key["name"] for key in keys] == ["parent"]


def test_login_throttle_cannot_be_dodged_with_x_forwarded_for_and_says_whole_seconds(
    rest: Rest,
) -> None:
    email = new_email("throttled")
    rest.ok("POST", "/v1/auth/register", json={"email": email, "password": PASSWORD})
    statuses = []
    for n in range(8):
        forged = {"x-forwarded-for": f"198.51.100.{n + 1}", "x-cift-client-address": "10.9.9.9"}
        response = rest.call(
            "POST",
            "/v1/auth/login",
            json={"email": email, "password": "wrong password 12"},
            headers=forged,
        )
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
    assert statuses[-1] == 429, statuses
    assert re.fullmatch(r"[1-9][0-9]*", response.headers["retry-after"]), response.headers
    assert response.json()["message"].startswith("Too many failed logins; try again in")
