"""`cift up` with CIFT_MARKETDATA_FEED=alpaca pointed at a local Alpaca server, used through the gateway.

The whole mesh (the launcher behind `cift up`, its own infrastructure) streams from
a server speaking Alpaca's documented protocol; a trader sees the server's last
quote at GET /v1/quotes/AAPL to the cent, and a market buy fills at its ask.
"""

from __future__ import annotations

import asyncio
import os
import time
from decimal import Decimal
from pathlib import Path

import pytest

from cift.runtime.config import env_name
from cift.stack.launcher import Stack, StackOptions
from tests.e2e.e2e_client import Rest, eventually, register_and_login
from tests.fakes import alpaca

pytestmark = pytest.mark.integration


async def test_cift_up_on_alpaca_serves_its_quote_through_the_gateway_and_fills_at_it(
    tmp_path: Path,
) -> None:
    server = alpaca.AlpacaStreamServer()
    url = await server.start()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CIFT_")}
    environ.update(
        {
            env_name("marketdata_feed"): "alpaca",
            env_name("alpaca_key_id"): alpaca.KEY_ID,
            env_name("alpaca_secret_key"): alpaca.SECRET,
            env_name("alpaca_stream_url"): url + "/v2/{feed}",
            env_name("marketdata_symbols"): "AAPL",
        }
    )
    stack = Stack(StackOptions(home=tmp_path / "home", free_ports=True, durable=False), environ)
    info = await stack.start()
    try:
        await server.wait_subscribed(timeout_s=60.0)
        bid, ask = "187.41", "187.45"
        await server.publish(
            [
                alpaca.trade("AAPL", time.time_ns() - 2_000_000, "187.43", 100, 1),
                alpaca.quote("AAPL", time.time_ns() - 1_000_000, "187.30", "187.50"),
                alpaca.quote("AAPL", time.time_ns(), bid, ask),
            ]
        )
        assert info.gateway_url is not None
        rest = Rest(info.gateway_url)

        def journey() -> tuple[dict[str, object], dict[str, object]]:
            trader = register_and_login(rest, "provider")

            def latest() -> dict[str, object] | None:
                # 404 until market data has ingested the provider's first AAPL quote.
                response = rest.call("GET", "/v1/quotes/AAPL", token=trader.access_token)
                if response.status_code == 404:
                    return None
                assert response.status_code == 200, response.text[:500]
                quote: dict[str, object] = response.json()["quote"]
                return quote if Decimal(repr(quote["bid"])) == Decimal(bid) else None

            quote = eventually(latest, "the server's last quote at the gateway", 30.0)
            order = rest.ok(
                "POST",
                "/v1/orders",
                token=trader.access_token,
                json={
                    "symbol": "AAPL",
                    "side": "ORDER_SIDE_BUY",
                    "type": "ORDER_TYPE_MARKET",
                    "timeInForce": "TIME_IN_FORCE_DAY",
                    "qty": "3",
                },
            )["order"]

            def filled() -> dict[str, object] | None:
                current: dict[str, object] = rest.ok(
                    "GET", f"/v1/orders/{order['id']}", token=trader.access_token
                )["order"]
                return current if current["status"] == "ORDER_STATUS_FILLED" else None

            return quote, eventually(filled, "the market order filled", 30.0)

        quote, order = await asyncio.to_thread(journey)
    finally:
        await stack.stop()
        await server.stop()
    assert Decimal(repr(quote["ask"])) == Decimal(ask)
    assert (quote["bidExchange"], quote["tape"]) == ("V", "C")
    assert Decimal(str(order["filledAvgPrice"])) == Decimal(ask)
    assert Decimal(str(order["filledQty"])) == 3
