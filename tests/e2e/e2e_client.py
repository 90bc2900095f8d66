"""How the end-to-end tests reach the mesh: as outside clients of the gateway, nothing else.

REST goes through `Rest` (plain HTTP/1.1 JSON), native gRPC through a channel to the
gateway's port with the generated stubs. Neither ever talks to a service directly.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any
from urllib.parse import urlsplit

import grpc
import requests
from google.protobuf import json_format
from google.protobuf.message import Message

PASSWORD = "correct horse battery staple"
SYMBOL = "AAPL"
Json = dict[str, Any]


class Rest:
    """A REST client of the gateway that returns the raw response (status, headers, JSON)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        api_key: str | None = None,
        json: Json | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 15.0,
        stream: bool = False,
    ) -> requests.Response:
        sent = dict(headers or {})
        if token is not None:
            sent["authorization"] = f"Bearer {token}"
        if api_key is not None:
            sent["x-api-key"] = api_key
        return self.session.request(
            method,
            self.base_url + path,
            json=json,
            params=params,
            headers=sent,
            timeout=timeout_s,
            stream=stream,
        )

    def ok(self, method: str, path: str, **kwargs: Any) -> Json:
        """The JSON body of a call that must succeed."""
        response = self.call(method, path, **kwargs)
        assert response.status_code == 200, (
            f"{method} {path} → {response.status_code}: {response.text[:500]}"
        )
        body: Json = response.json()
        return body


@dataclass(frozen=True)
class Trader:
    email: str
    user_id: str
    account_id: str
    access_token: str
    refresh_token: str


def new_email(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}@example.com"


def register_and_login(rest: Rest, label: str = "trader") -> Trader:
    email = new_email(label)
    registered = rest.ok(
        "POST",
        "/v1/auth/register",
        json={"email": email, "password": PASSWORD, "displayName": label},
    )
    login = rest.ok("POST", "/v1/auth/login", json={"email": email, "password": PASSWORD})
    return Trader(
        email=email,
        user_id=registered["user"]["id"],
        account_id=registered["user"]["accountId"],
        access_token=login["accessToken"],
        refresh_token=login["refreshToken"],
    )


def market_order(side: str = "ORDER_SIDE_BUY", qty: str = "1", symbol: str = SYMBOL) -> Json:
    """The REST body of a day market order."""
    return {
        "symbol": symbol,
        "side": side,
        "type": "ORDER_TYPE_MARKET",
        "timeInForce": "TIME_IN_FORCE_DAY",
        "qty": qty,
    }


def limit_price_away_from_market(quote: Json, side: str) -> str:
    """A limit price 5 % through the market on the passive side: the order rests
    (never fills in a test's lifetime) but stays inside risk's 10 % price collar."""
    if side == "ORDER_SIDE_BUY":
        price = Decimal(str(quote["bid"])) * Decimal("0.95")
    else:
        price = Decimal(str(quote["ask"])) * Decimal("1.05")
    return str(price.quantize(Decimal("0.01"), rounding=ROUND_DOWN))


def resting_buy(rest: Rest, trader: Trader, qty: str = "1") -> Json:
    """A GTC limit buy that rests on the book: an order another user could try to reach."""
    quote = rest.ok("GET", f"/v1/quotes/{SYMBOL}", token=trader.access_token)["quote"]
    order: Json = rest.ok(
        "POST",
        "/v1/orders",
        token=trader.access_token,
        json={
            "symbol": SYMBOL,
            "side": "ORDER_SIDE_BUY",
            "type": "ORDER_TYPE_LIMIT",
            "timeInForce": "TIME_IN_FORCE_GTC",
            "qty": qty,
            "limitPrice": limit_price_away_from_market(quote, "ORDER_SIDE_BUY"),
        },
    )["order"]
    assert order["status"] in ("ORDER_STATUS_NEW", "ORDER_STATUS_ACCEPTED"), order
    return order


def eventually(probe: Callable[[], Any], what: str, timeout_s: float = 10.0) -> Any:
    """The first truthy result of `probe`, polled until `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


# ---- native gRPC through the gateway -------------------------------------------------


def grpc_target(gateway_url: str) -> str:
    parts = urlsplit(gateway_url)
    return f"{parts.hostname}:{parts.port}"


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def to_json(message: Message) -> Json:
    """proto3 JSON as the gateway's REST side prints it (zero values included)."""
    body: Json = json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    return body


def rpc_code(call: Callable[[], Any]) -> grpc.StatusCode:
    """The status a gRPC call ends with (OK when it succeeds)."""
    try:
        result = call()
        if hasattr(result, "__iter__") and not isinstance(result, Message):
            next(iter(result))
    except grpc.RpcError as error:
        code: grpc.StatusCode = error.code()
        return code
    return grpc.StatusCode.OK
