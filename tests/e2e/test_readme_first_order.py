"""The README's first order, with curl and with a gRPC client, run as written against the stack.

A newcomer copies these blocks; if a route, a field or a message changes, this fails
before the README misleads anyone. The only edits are the gateway's address (the test
stack listens on a free port, not 8080) and a new email per run.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.e2e_client import (
    Rest,
    Trader,
    eventually,
    grpc_target,
    market_order,
    new_email,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
README_ADDRESS = "localhost:8080"
README_EMAIL = "ada@example.com"
README_PASSWORD = "correct horse battery"


def fenced(heading: str, language: str) -> str:
    """The first ```language block under the README heading `heading`."""
    text = README.read_text()
    start = text.index(f"\n{heading}\n")
    block = re.compile(rf"```{language}\n(.*?)```", re.DOTALL).search(text, start)
    assert block is not None, f"no {language} block under {heading!r} in README.md"
    return block.group(1)


def as_run(snippet: str, gateway_url: str, email: str) -> str:
    assert README_ADDRESS in snippet and README_EMAIL in snippet
    return snippet.replace(README_ADDRESS, grpc_target(gateway_url)).replace(README_EMAIL, email)


def json_values(output: str) -> tuple[list[Any], str]:
    """The JSON documents curl printed one after another, and what follows the last."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    position = 0
    while position < len(output) and output[position] == "{":
        value, position = decoder.raw_decode(output, position)
        values.append(value)
    return values, output[position:]


def run(command: list[str], script: str) -> str:
    done = subprocess.run(
        [*command, script], capture_output=True, text=True, timeout=120, cwd=ROOT, check=False
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture
def fills_at_once(rest: Rest, trader: Trader) -> None:
    """Wait until execution fills a market order as it is placed, as on a running stack.

    The README shows the reply of a stack that has been up for a moment. On a fresh
    one, execution's tick consumer may not have taken a quote yet; its first market
    orders then rest until the first tick, and come back ACCEPTED, not FILLED.
    """

    def filled_at_once() -> bool:
        response = rest.call("POST", "/v1/orders", token=trader.access_token, json=market_order())
        return response.ok and response.json()["order"]["status"] == "ORDER_STATUS_FILLED"

    eventually(filled_at_once, "a market order filled as it is placed", timeout_s=30)


@pytest.mark.usefixtures("fills_at_once")
def test_the_curl_session_registers_trades_rests_a_limit_and_cancels_it(gateway_url: str) -> None:
    email = new_email("readme-curl")
    script = as_run(fenced("### Your first order with curl", "bash"), gateway_url, email)

    values, tail = json_values(run(["bash", "-euo", "pipefail", "-c"], script))

    registered, quote, bought, position, account, open_orders, canceled, refused = values
    assert registered["user"]["email"] == email
    assert registered["openingCash"] == "100000"
    assert quote["quote"]["symbol"] == "AAPL" and quote["quote"]["ask"] > 0
    order = bought["order"]
    assert (order["status"], order["filledQty"]) == ("ORDER_STATUS_FILLED", "10")
    cost = 10 * Decimal(order["filledAvgPrice"])
    assert Decimal(position["position"]["qty"]) == 10
    assert Decimal(position["position"]["costBasis"]) == cost
    assert Decimal(account["account"]["cash"]) == Decimal(100000) - cost
    [resting] = open_orders["orders"]
    assert (resting["type"], resting["qty"], resting["status"]) == (
        "ORDER_TYPE_LIMIT",
        "5",
        "ORDER_STATUS_ACCEPTED",
    )
    assert canceled["order"]["id"] == resting["id"]
    assert canceled["order"]["status"] == "ORDER_STATUS_CANCELED"
    # The README quotes this refusal word for word.
    printed = json.dumps(refused, separators=(",", ":")) + tail.rstrip("\n")
    assert refused["code"] == 3 and tail.strip() == "HTTP 400"
    assert f"prints `{printed}`" in " ".join(README.read_text().split())


@pytest.mark.usefixtures("fills_at_once")
def test_the_grpc_client_signs_in_trades_and_reads_its_account(
    rest: Rest, gateway_url: str
) -> None:
    email = new_email("readme-grpc")
    rest.ok("POST", "/v1/auth/register", json={"email": email, "password": README_PASSWORD})
    script = as_run(fenced("### Your first order with a gRPC client", "python"), gateway_url, email)

    lines = run([sys.executable, "-c"], script).splitlines()

    assert len(lines) == 4, lines
    assert re.fullmatch(r"AAPL bid \d+\.?\d* ask \d+\.?\d*", lines[0])
    filled = re.fullmatch(r"ORDER_STATUS_FILLED 1 at (\d+\.?\d*)", lines[1])
    assert filled is not None, lines[1]
    assert lines[2] == "INVALID_ARGUMENT side is required: ORDER_SIDE_BUY or ORDER_SIDE_SELL."
    cash = Decimal(100000) - Decimal(filled.group(1))
    assert re.fullmatch(rf"cash {re.escape(str(cash))} equity \d+\.?\d*", lines[3]), lines[3]
