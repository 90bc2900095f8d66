"""Security at the edge: what the gateway lets in, whoever the client pretends to be."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
import socket
import struct
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import grpc
import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

from cift.execution.v1 import execution_pb2, execution_pb2_grpc
from cift.protogen import build_descriptor_set
from cift.runtime.tokens import b64url_decode, b64url_encode
from services.auth.config import DEFAULT_PUBLIC_PATHS
from tests.e2e.e2e_client import Rest, Trader, bearer, register_and_login, resting_buy, rpc_code

pytestmark = pytest.mark.integration

SERVICES = (
    "cift.auth.v1.AuthService",
    "cift.marketdata.v1.MarketDataService",
    "cift.execution.v1.ExecutionService",
    "cift.risk.v1.RiskService",
    "cift.backtest.v1.BacktestService",
)
BODY_LIMIT_BYTES = 65_536


@dataclass(frozen=True)
class Rpc:
    path: str
    verb: str | None  # the REST verb, or None for methods without a REST binding
    template: str | None
    has_body: bool
    client_streaming: bool
    server_streaming: bool

    @property
    def internal(self) -> bool:
        return self.verb is None and (self.client_streaming or not self.server_streaming)


@pytest.fixture(scope="module")
def rpcs(tmp_path_factory: pytest.TempPathFactory) -> list[Rpc]:
    """Every method of the routed services, read from the descriptor of protos/."""
    path = build_descriptor_set(tmp_path_factory.mktemp("edge") / "cift.pb")
    descriptors = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())
    found = []
    for file in descriptors.file:
        for service in file.service:
            if f"{file.package}.{service.name}" not in SERVICES:
                continue
            for method in service.method:
                verb = template = None
                body = False
                if method.options.HasExtension(annotations_pb2.http):
                    rule = method.options.Extensions[annotations_pb2.http]
                    verb = rule.WhichOneof("pattern")
                    template = getattr(rule, verb)
                    body = bool(rule.body)
                found.append(
                    Rpc(
                        path=f"/{file.package}.{service.name}/{method.name}",
                        verb=verb,
                        template=template,
                        has_body=body,
                        client_streaming=method.client_streaming,
                        server_streaming=method.server_streaming,
                    )
                )
    assert len(found) > 30
    return found


def is_public(rpc: Rpc) -> bool:
    return rpc.path in DEFAULT_PUBLIC_PATHS


def test_every_non_public_rest_route_refuses_a_request_without_credential(
    rest: Rest, rpcs: list[Rpc]
) -> None:
    checked = []
    for rpc in rpcs:
        if is_public(rpc) or rpc.internal:
            continue
        body: dict[str, str] | None
        if rpc.verb is None:  # a server stream, served by auto mapping
            method, path, body = "POST", rpc.path, {}
        else:
            assert rpc.template is not None
            method = rpc.verb.upper()
            path = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), rpc.template)
            body = {} if rpc.has_body else None
        response = rest.call(method, path, json=body)
        assert response.status_code == 401, f"{method} {path}: {response.status_code}"
        assert response.headers["grpc-status"] == "16", f"{method} {path}"
        assert response.headers["www-authenticate"].startswith("Bearer"), f"{method} {path}"
        checked.append(f"{method} {path}")
    assert len(checked) >= 30


def test_every_non_public_grpc_method_refuses_a_call_without_credential(
    channel: grpc.Channel, rpcs: list[Rpc]
) -> None:
    for rpc in rpcs:
        if is_public(rpc) or rpc.internal:
            continue
        if rpc.server_streaming:
            stream = channel.unary_stream(rpc.path, None, None)
            code = rpc_code(lambda: stream(b"", timeout=5))  # noqa: B023
        else:
            unary = channel.unary_unary(rpc.path, None, None)
            code = rpc_code(lambda: unary(b"", timeout=5))  # noqa: B023
        assert code == grpc.StatusCode.UNAUTHENTICATED, rpc.path


def healthz_settles_to_200(rest: Rest, within_s: float = 30.0) -> bool:
    """GET /healthz, without a credential, answers 200 once every service's health check
    passes. It is never 401; it may be 503 for a while when the suite's load made two
    health checks of some service in a row time out (Envoy's 2 s each), until one passes."""
    deadline = time.monotonic() + within_s
    while True:
        status = rest.call("GET", "/healthz").status_code
        assert status in (200, 503), status
        if status == 200:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(1.0)


def test_public_routes_answer_without_credential(rest: Rest) -> None:
    jwks = rest.ok("GET", "/v1/auth/jwks")
    assert jwks["keys"] and all(k["kty"] == "OKP" for k in jwks["keys"])
    assert healthz_settles_to_200(rest)
    document = rest.ok("GET", "/openapi.json")
    assert document["openapi"].startswith("3.")
    wrong = rest.call(
        "POST", "/v1/auth/login", json={"email": "nobody@example.com", "password": "wrong"}
    )
    assert wrong.status_code == 401 and wrong.json()["code"] == 16  # answered by auth itself


def test_internal_rpcs_are_not_reachable_over_rest(rest: Rest, trader: Trader) -> None:
    for method in ("CheckOrder", "CheckOrders"):
        response = rest.call(
            "POST", f"/cift.risk.v1.RiskService/{method}", token=trader.access_token, json={}
        )
        assert response.status_code == 404, method
        assert response.headers["grpc-status"] == "12", method


def test_response_only_grpc_headers_sent_by_a_client_are_dropped(
    rest: Rest, trader: Trader
) -> None:
    """A request carrying grpc-status or grpc-message (headers only a response has), even
    unparsable, is answered as without them; the fuzz test once got a 500 from one."""
    sent = {"grpc-status": "{l#jm2uk@", "grpc-message": "%zz not a message"}
    listed = rest.call("GET", "/v1/orders?symbols=151", token=trader.access_token, headers=sent)
    assert listed.status_code == 200, listed.text
    canceled = rest.call("DELETE", "/v1/orders", token=trader.access_token, headers=sent)
    assert canceled.status_code == 200, canceled.text


def test_identity_headers_sent_by_a_client_are_ignored(
    rest: Rest, channel: grpc.Channel, trader: Trader
) -> None:
    victim = register_and_login(rest, "victim")
    forged = {
        "x-cift-identity": victim.access_token,  # a genuine token, in the gateway's header
        "x-cift-user-id": victim.user_id,
        "x-cift-account-id": victim.account_id,
        "x-cift-scopes": "read trade admin",
    }
    mine = rest.ok("GET", "/v1/account", token=trader.access_token, headers=forged)["account"]
    assert mine["id"] == trader.account_id
    alone = rest.call("GET", "/v1/account", headers=forged)
    assert alone.status_code == 401
    me = rest.ok("GET", "/v1/auth/me", token=trader.access_token, headers=forged)["user"]
    assert me["id"] == trader.user_id

    execution = execution_pb2_grpc.ExecutionServiceStub(channel)
    account = execution.GetAccount(
        execution_pb2.GetAccountRequest(),
        metadata=(*bearer(trader.access_token), *forged.items()),
        timeout=10,
    ).account
    assert account.id == trader.account_id
    assert (
        rpc_code(
            lambda: execution.GetAccount(
                execution_pb2.GetAccountRequest(), metadata=tuple(forged.items()), timeout=10
            )
        )
        == grpc.StatusCode.UNAUTHENTICATED
    )


def _segment(value: dict[str, object]) -> str:
    return b64url_encode(json.dumps(value).encode())


def _decode_segment(segment: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(b64url_decode(segment))
    return decoded


def test_forged_access_tokens_are_refused_whichever_filter_sees_them(
    rest: Rest, trader: Trader, channel: grpc.Channel
) -> None:
    """Forgeries an attacker can make without auth's private key, over REST and gRPC.

    The gateway verifies JWTs itself and hands the ones it cannot verify to auth's
    check, so each forgery must fail both: none may reach a service as the victim.
    """
    victim = register_and_login(rest, "victim")
    header, payload, signature = victim.access_token.split(".")
    kid = _decode_segment(header)["kid"]
    (jwk,) = [k for k in rest.ok("GET", "/v1/auth/jwks")["keys"] if k["kid"] == kid]
    public_raw = b64url_decode(jwk["x"])
    claims = _decode_segment(payload)
    own_header, own_payload, own_signature = trader.access_token.split(".")
    hs_head = _segment({"alg": "HS256", "kid": kid, "typ": "JWT"})
    hs_mac = hmac.new(public_raw, f"{hs_head}.{payload}".encode(), hashlib.sha256).digest()
    foreign = Ed25519PrivateKey.generate()
    forgeries = {
        "alg none": f"{_segment({'alg': 'none', 'kid': kid})}.{payload}.",
        "HS256 keyed with the public key": f"{hs_head}.{payload}.{b64url_encode(hs_mac)}",
        "another key under auth's kid": pyjwt.encode(
            claims, foreign, algorithm="EdDSA", headers={"kid": kid}
        ),
        "another key under another kid": pyjwt.encode(
            claims, foreign, algorithm="EdDSA", headers={"kid": "attacker"}
        ),
        "victim's claims, attacker's signature": f"{own_header}.{payload}.{own_signature}",
        "attacker's claims, victim's signature": f"{header}.{own_payload}.{signature}",
    }
    stub = execution_pb2_grpc.ExecutionServiceStub(channel)
    for name, token in forgeries.items():
        refused = rest.call("GET", "/v1/account", token=token)
        assert (refused.status_code, refused.headers.get("grpc-status")) == (401, "16"), name
        call = functools.partial(
            stub.GetAccount, execution_pb2.GetAccountRequest(), metadata=bearer(token), timeout=10
        )
        assert rpc_code(call) == grpc.StatusCode.UNAUTHENTICATED, name
    # The control: the victim's own token works.
    account = rest.ok("GET", "/v1/account", token=victim.access_token)["account"]
    assert account["id"] == victim.account_id


def test_another_traders_orders_are_out_of_reach_over_rest(rest: Rest, trader: Trader) -> None:
    victim = register_and_login(rest, "victim")
    victims_order = resting_buy(rest, victim)
    mine = resting_buy(rest, trader)
    token = trader.access_token
    order_path = f"/v1/orders/{victims_order['id']}"

    assert rest.call("GET", order_path, token=token).status_code == 404
    assert rest.call("DELETE", order_path, token=token).status_code == 404
    assert rest.call("PATCH", order_path, token=token, json={"qty": "2"}).status_code == 404
    # A query parameter overrides the path binding: the service must still refuse.
    override = rest.call(
        "GET", f"/v1/orders/{mine['id']}", token=token, params={"orderId": victims_order["id"]}
    )
    assert override.status_code == 404
    others = rest.call("GET", "/v1/orders", token=token, params={"accountId": victim.account_id})
    assert others.status_code == 403
    listed = rest.ok("GET", "/v1/orders", token=token, params={"status": "all"})["orders"]
    assert [o["id"] for o in listed] == [mine["id"]]
    rest.ok("DELETE", "/v1/orders", token=token)  # cancels every order of the caller only
    assert (
        rest.ok("GET", f"/v1/orders/{mine['id']}", token=token)["order"]["status"]
        == "ORDER_STATUS_CANCELED"
    )
    untouched = rest.ok("GET", order_path, token=victim.access_token)["order"]
    assert untouched["status"] == victims_order["status"]
    assert untouched["qty"] == victims_order["qty"]


def test_an_oversized_request_body_is_refused_before_any_service(
    rest: Rest, channel: grpc.Channel, trader: Trader
) -> None:
    too_big = "A" * (BODY_LIMIT_BYTES + 1)
    rest_call = rest.call(
        "POST", "/v1/orders", token=trader.access_token, json={"clientOrderId": too_big}
    )
    assert rest_call.status_code == 413
    # Just under the limit, the same request reaches execution, which judges it.
    near = "A" * (BODY_LIMIT_BYTES - 1000)
    judged = rest.call(
        "POST", "/v1/orders", token=trader.access_token, json={"clientOrderId": near}
    )
    assert judged.status_code == 400 and judged.json()["code"] == 3  # INVALID_ARGUMENT

    execution = execution_pb2_grpc.ExecutionServiceStub(channel)
    grpc_call = rpc_code(
        lambda: execution.SubmitOrder(
            execution_pb2.SubmitOrderRequest(symbol="AAPL", client_order_id=too_big),
            metadata=bearer(trader.access_token),
            timeout=10,
        )
    )
    assert grpc_call != grpc.StatusCode.OK
    assert grpc_call != grpc.StatusCode.INVALID_ARGUMENT  # refused by the gateway, not judged

    message = execution_pb2.SubmitOrderRequest(client_order_id=too_big).SerializeToString()
    web = rest.session.post(
        rest.base_url + "/cift.execution.v1.ExecutionService/SubmitOrder",
        data=struct.pack(">BI", 0, len(message)) + message,
        headers={
            "content-type": "application/grpc-web+proto",
            "x-grpc-web": "1",
            "authorization": f"Bearer {trader.access_token}",
        },
        timeout=10,
    )
    assert web.status_code == 413


def _stalled_request(gateway_url: str, first_bytes: bytes) -> tuple[float, bytes]:
    """Send the start of a request, then nothing: how long until the gateway answers."""
    parts = urlsplit(gateway_url)
    assert parts.hostname is not None and parts.port is not None
    started = time.monotonic()
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(first_bytes)
        answer = sock.recv(200)
    return time.monotonic() - started, answer


def test_slow_clients_are_cut_off(gateway_url: str) -> None:
    slow_headers = b"GET /v1/account HTTP/1.1\r\nHost: cift\r\nAuthorization: Bearer x"
    slow_body = (
        b"POST /v1/auth/login HTTP/1.1\r\nHost: cift\r\nContent-Type: application/json\r\n"
        b"Content-Length: 200\r\n\r\n{"
    )
    with ThreadPoolExecutor(2) as pool:
        headers_cut = pool.submit(_stalled_request, gateway_url, slow_headers)
        body_cut = pool.submit(_stalled_request, gateway_url, slow_body)
        (headers_s, headers_answer), (body_s, body_answer) = headers_cut.result(), body_cut.result()
    assert headers_answer.startswith(b"HTTP/1.1 408"), headers_answer
    assert 4.0 <= headers_s < 9.0
    assert body_answer.startswith(b"HTTP/1.1 408"), body_answer
    assert 9.0 <= body_s < 15.0
