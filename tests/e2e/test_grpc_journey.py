"""The trader's session over native gRPC with the generated stubs, through the gateway's port."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import grpc
import pytest

from cift.auth.v1 import auth_pb2, auth_pb2_grpc
from cift.execution.v1 import execution_pb2, execution_pb2_grpc, orders_pb2
from cift.marketdata.v1 import marketdata_pb2, marketdata_pb2_grpc
from cift.risk.v1 import risk_pb2, risk_pb2_grpc
from tests.e2e.e2e_client import (
    PASSWORD,
    SYMBOL,
    Rest,
    Trader,
    bearer,
    eventually,
    new_email,
    register_and_login,
    resting_buy,
    rpc_code,
    to_json,
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
QTY = "7"
TIMEOUT_S = 15.0


class Collector:
    """Reads a server stream on a thread, keeping each message as proto3 JSON."""

    def __init__(self, call: Any, wanted: int) -> None:
        self.call = call
        self.wanted = wanted
        self.messages: list[Json] = []
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for message in self.call:
                self.messages.append(to_json(message))
                if len(self.messages) >= self.wanted:
                    break
        except grpc.RpcError:
            pass
        finally:
            self.done.set()

    def result(self) -> list[Json]:
        assert self.done.wait(TIMEOUT_S), f"stream gave {len(self.messages)} of {self.wanted}"
        self.call.cancel()
        return self.messages


def test_trader_session_over_native_grpc_through_the_gateway(
    channel: grpc.Channel, rest: Rest
) -> None:
    auth = auth_pb2_grpc.AuthServiceStub(channel)
    marketdata = marketdata_pb2_grpc.MarketDataServiceStub(channel)
    execution = execution_pb2_grpc.ExecutionServiceStub(channel)

    email = new_email("grpc")
    registered = auth.Register(
        auth_pb2.RegisterRequest(email=email, password=PASSWORD, display_name="gRPC trader"),
        timeout=TIMEOUT_S,
    )
    login = auth.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD), timeout=TIMEOUT_S)
    auth_md = bearer(login.access_token)
    me = auth.GetMe(auth_pb2.GetMeRequest(), metadata=auth_md, timeout=TIMEOUT_S)
    assert me.user.account_id == registered.user.account_id

    quote = marketdata.GetLatestQuote(
        marketdata_pb2.GetLatestQuoteRequest(symbol=SYMBOL), metadata=auth_md, timeout=TIMEOUT_S
    )
    assert_quote_is_live(to_json(quote.quote), SYMBOL)
    bars = marketdata.GetBars(
        marketdata_pb2.GetBarsRequest(symbol=SYMBOL, timeframe="1Sec", page_size=20),
        metadata=auth_md,
        timeout=TIMEOUT_S,
    )
    assert_bars(to_json(bars), SYMBOL, "1Sec")

    quotes_call = marketdata.StreamQuotes(
        marketdata_pb2.StreamQuotesRequest(symbols=[SYMBOL]), metadata=auth_md
    )
    quotes = Collector(quotes_call, 3)
    updates_call = execution.StreamOrderUpdates(
        execution_pb2.StreamOrderUpdatesRequest(), metadata=auth_md
    )
    # The headers arrive once the stream is subscribed: every later event reaches it.
    updates_call.initial_metadata()
    updates = Collector(updates_call, 4)

    def account() -> Json:
        got = execution.GetAccount(
            execution_pb2.GetAccountRequest(), metadata=auth_md, timeout=TIMEOUT_S
        )
        return to_json(got.account)

    def trade(side: orders_pb2.OrderSide.ValueType) -> Json:
        submitted = execution.SubmitOrder(
            execution_pb2.SubmitOrderRequest(
                symbol=SYMBOL,
                side=side,
                type=orders_pb2.ORDER_TYPE_MARKET,
                time_in_force=orders_pb2.TIME_IN_FORCE_DAY,
                qty=QTY,
            ),
            metadata=auth_md,
            timeout=TIMEOUT_S,
        )

        def probe() -> Json | None:
            order = execution.GetOrder(
                execution_pb2.GetOrderRequest(order_id=submitted.order.id),
                metadata=auth_md,
                timeout=TIMEOUT_S,
            ).order
            if order.status != orders_pb2.ORDER_STATUS_FILLED:
                return None
            return to_json(order)

        filled: Json = eventually(probe, f"order {submitted.order.id} to fill")
        return filled

    account_before = account()
    buy = trade(orders_pb2.ORDER_SIDE_BUY)
    position = execution.GetPosition(
        execution_pb2.GetPositionRequest(symbol=SYMBOL), metadata=auth_md, timeout=TIMEOUT_S
    ).position
    account_after_buy = account()
    sell = trade(orders_pb2.ORDER_SIDE_SELL)
    account_after_sell = account()
    activities = execution.ListActivities(
        execution_pb2.ListActivitiesRequest(), metadata=auth_md, timeout=TIMEOUT_S
    ).activities
    trip = RoundTrip(
        SYMBOL,
        Decimal(QTY),
        account_before,
        buy,
        to_json(position),
        account_after_buy,
        sell,
        account_after_sell,
        [to_json(a) for a in activities],
    )
    assert_round_trip(trip)
    assert_order_events([m["event"] for m in updates.result()], trip)
    assert_quote_stream([b for b in quotes.result() if b["quotes"]], SYMBOL)
    flat = rpc_code(
        lambda: execution.GetPosition(
            execution_pb2.GetPositionRequest(symbol=SYMBOL), metadata=auth_md, timeout=TIMEOUT_S
        )
    )
    assert flat == grpc.StatusCode.NOT_FOUND

    key = auth.CreateApiKey(
        auth_pb2.CreateApiKeyRequest(name="grpc", scopes=["read"]),
        metadata=auth_md,
        timeout=TIMEOUT_S,
    )
    key_md = (("x-api-key", key.key),)
    assert rpc_code(
        lambda: execution.GetAccount(execution_pb2.GetAccountRequest(), metadata=key_md)
    ) == (grpc.StatusCode.OK)
    auth.RevokeApiKey(
        auth_pb2.RevokeApiKeyRequest(key_id=key.api_key.id), metadata=auth_md, timeout=TIMEOUT_S
    )
    assert (
        rpc_code(lambda: execution.GetAccount(execution_pb2.GetAccountRequest(), metadata=key_md))
        == grpc.StatusCode.UNAUTHENTICATED
    )

    auth.Logout(
        auth_pb2.LogoutRequest(refresh_token=login.refresh_token),
        metadata=auth_md,
        timeout=TIMEOUT_S,
    )
    assert (
        rpc_code(
            lambda: auth.RefreshToken(
                auth_pb2.RefreshTokenRequest(refresh_token=login.refresh_token)
            )
        )
        == grpc.StatusCode.UNAUTHENTICATED
    )


def test_another_traders_orders_are_out_of_reach_over_grpc(
    channel: grpc.Channel, rest: Rest, trader: Trader
) -> None:
    other = register_and_login(rest, "victim")
    victims_order = resting_buy(rest, other)
    execution = execution_pb2_grpc.ExecutionServiceStub(channel)
    md = bearer(trader.access_token)
    order_id = victims_order["id"]
    attempts = {
        "get": lambda: execution.GetOrder(
            execution_pb2.GetOrderRequest(order_id=order_id), metadata=md
        ),
        "cancel": lambda: execution.CancelOrder(
            execution_pb2.CancelOrderRequest(order_id=order_id), metadata=md
        ),
        "replace": lambda: execution.ReplaceOrder(
            execution_pb2.ReplaceOrderRequest(order_id=order_id, qty="5"), metadata=md
        ),
        "list": lambda: execution.ListOrders(
            execution_pb2.ListOrdersRequest(account_id=other.account_id), metadata=md
        ),
        "positions": lambda: execution.ListPositions(
            execution_pb2.ListPositionsRequest(account_id=other.account_id), metadata=md
        ),
        "stream": lambda: execution.StreamOrderUpdates(
            execution_pb2.StreamOrderUpdatesRequest(account_id=other.account_id),
            metadata=md,
            timeout=5,
        ),
    }
    assert {name: rpc_code(call) for name, call in attempts.items()} == {
        "get": grpc.StatusCode.NOT_FOUND,
        "cancel": grpc.StatusCode.NOT_FOUND,
        "replace": grpc.StatusCode.NOT_FOUND,
        "list": grpc.StatusCode.PERMISSION_DENIED,
        "positions": grpc.StatusCode.PERMISSION_DENIED,
        "stream": grpc.StatusCode.PERMISSION_DENIED,
    }
    execution.CancelAllOrders(execution_pb2.CancelAllOrdersRequest(), metadata=md)
    after = rest.ok("GET", f"/v1/orders/{order_id}", token=other.access_token)["order"]
    assert after["status"] == victims_order["status"]


def test_internal_risk_checks_are_not_reachable_over_grpc(
    channel: grpc.Channel, trader: Trader
) -> None:
    risk = risk_pb2_grpc.RiskServiceStub(channel)
    md = bearer(trader.access_token)
    assert (
        rpc_code(lambda: risk.CheckOrder(risk_pb2.CheckOrderRequest(), metadata=md, timeout=5))
        == grpc.StatusCode.UNIMPLEMENTED
    )
    checks = risk.CheckOrders(iter([risk_pb2.CheckOrdersRequest()]), metadata=md, timeout=5)
    assert rpc_code(lambda: checks) == grpc.StatusCode.UNIMPLEMENTED
    # Nor is anything else a service serves besides its API: the gateway's own check
    # service, health and reflection.
    for path in (
        "/envoy.service.auth.v3.Authorization/Check",
        "/grpc.health.v1.Health/Check",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    ):
        call = channel.unary_unary(path, None, None)
        code = rpc_code(lambda: call(b"", metadata=md, timeout=5))  # noqa: B023
        assert code == grpc.StatusCode.UNIMPLEMENTED, path
