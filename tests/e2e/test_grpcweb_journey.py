"""The trader's session over gRPC-Web with a real browser-side client library, under Node.

The client is Connect's gRPC-Web transport (`@connectrpc/connect-node`, HTTP/1.1 as a
browser's fetch) with code that `@bufbuild/buf` and `@bufbuild/protoc-gen-es`
generate from protos/ for this run; clients/grpcweb_journey.mjs drives it and reports
what the gateway answered, and this test judges the answers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cift.protogen import build_descriptor_set
from tests.e2e.e2e_client import PASSWORD, SYMBOL, Rest, Trader, register_and_login, resting_buy
from tests.e2e.e2e_journey import (
    RoundTrip,
    assert_bars,
    assert_order_events,
    assert_quote_is_live,
    assert_quote_stream,
    assert_round_trip,
)

pytestmark = pytest.mark.integration

CLIENTS = Path(__file__).resolve().parents[2] / "clients"
QTY = "3"
Json = dict[str, Any]


def run(argv: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=CLIENTS, capture_output=True, text=True, timeout=timeout_s, check=False
    )


@pytest.fixture(scope="session")
def grpcweb_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """clients/ with its npm packages installed and code generated from today's protos."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "Node.js and npm are needed for the gRPC-Web client"
    if not (CLIENTS / "node_modules" / "@connectrpc" / "connect-node").is_dir():
        installed = run([npm, "ci", "--no-audit", "--no-fund"], 300)
        assert installed.returncode == 0, installed.stderr[-2000:]
    descriptor = build_descriptor_set(tmp_path_factory.mktemp("grpcweb") / "cift.pb")
    shutil.rmtree(CLIENTS / "gen", ignore_errors=True)
    # The descriptor set (with imports and comments) is a buf image, so buf needs no
    # network for the googleapis imports.
    generated = run([npm, "run", "--silent", "generate", "--", f"{descriptor}#format=binpb"], 120)
    assert generated.returncode == 0, generated.stderr[-2000:]
    assert (CLIENTS / "gen" / "cift" / "execution" / "v1" / "execution_pb.js").is_file()
    return CLIENTS / "grpcweb_journey.mjs"


def test_trader_session_over_grpc_web_from_a_browser_client_library(
    rest: Rest, gateway_url: str, grpcweb_client: Path, tmp_path: Path
) -> None:
    other: Trader = register_and_login(rest, "other")
    others_order = resting_buy(rest, other)
    email = f"grpcweb-{uuid.uuid4().hex[:12]}@example.com"
    inputs = tmp_path / "input.json"
    inputs.write_text(
        json.dumps(
            {
                "email": email,
                "password": PASSWORD,
                "symbol": SYMBOL,
                "qty": QTY,
                "orderEventCount": 4,
                "otherOrderId": others_order["id"],
                "otherAccountId": other.account_id,
            }
        )
    )
    result = subprocess.run(
        ["node", str(grpcweb_client), gateway_url, str(inputs)],
        cwd=CLIENTS,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report: Json = json.loads(result.stdout)

    assert report["unauthenticated"] == "Unauthenticated"
    assert report["register"]["user"]["email"] == email
    assert report["me"]["user"]["id"] == report["register"]["user"]["id"]
    assert_quote_is_live(report["quote"]["quote"], SYMBOL)
    assert_bars(report["bars"], SYMBOL, "1Sec")

    trip = RoundTrip(
        SYMBOL,
        Decimal(QTY),
        report["accountBefore"]["account"],
        report["buy"]["order"],
        report["position"]["position"],
        report["accountAfterBuy"]["account"],
        report["sell"]["order"],
        report["accountAfterSell"]["account"],
        report["activities"]["activities"],
    )
    assert_round_trip(trip)
    assert report["positionAfterSell"] == "NotFound"
    assert_order_events([m["event"] for m in report["orderEvents"]], trip)
    assert_quote_stream([b for b in report["quoteStream"] if b["quotes"]], SYMBOL)

    assert report["otherOrder"] == {
        "get": "NotFound",
        "cancel": "NotFound",
        "replace": "NotFound",
        "listOrders": "PermissionDenied",
        "stream": "PermissionDenied",
    }
    assert report["internalCheckOrder"] == "Unimplemented"
    assert report["apiKey"]["apiKey"]["scopes"] == ["read"]
    assert report["apiKeyRead"] == "OK"
    assert report["apiKeyTrade"] == "PermissionDenied"
    assert report["apiKeyAfterRevoke"] == "Unauthenticated"
    assert report["refreshAfterLogout"] == "Unauthenticated"

    still_resting = rest.ok("GET", f"/v1/orders/{others_order['id']}", token=other.access_token)
    assert still_resting["order"]["status"] == others_order["status"]
