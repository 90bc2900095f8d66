"""What an operator reads from the gateway: access logs, Prometheus stats, health, the API document."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
import requests

from cift.stack.gateway import OPENAPI_PATH
from cift.stack.launcher import StackInfo
from tests.e2e.e2e_client import Rest, Trader

pytestmark = pytest.mark.integration


def test_each_request_is_logged_as_json_with_the_caller_and_without_the_credential(
    rest: Rest, trader: Trader, stack_info: StackInfo
) -> None:
    agent = f"e2e-{uuid.uuid4()}"
    rest.ok("GET", "/v1/account", token=trader.access_token, headers={"user-agent": agent})
    log = Path(stack_info.home) / "logs" / "gateway.log"
    deadline = time.monotonic() + 10
    while not (lines := [line for line in log.read_text().splitlines() if agent in line]):
        assert time.monotonic() < deadline, "the request never reached the access log"
        time.sleep(0.2)
    (line,) = lines
    entry = json.loads(line)
    assert entry["method"] == "GET"
    assert entry["path"] == "/v1/account"
    assert entry["grpc_method"] == "/cift.execution.v1.ExecutionService/GetAccount"
    assert (entry["status"], entry["grpc_status"]) == (200, 0)
    assert entry["upstream"] == "execution"
    assert entry["user_id"] == trader.user_id
    assert trader.access_token not in line


def gateway_samples(stack_info: StackInfo) -> dict[str, float]:
    """The gateway's Prometheus samples: `name{labels}` → value."""
    assert stack_info.gateway_admin_url is not None
    text = requests.get(stack_info.gateway_admin_url + "/stats/prometheus", timeout=10).text
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_prometheus_stats_count_requests_per_service_and_health_checks(
    rest: Rest, trader: Trader, stack_info: StackInfo
) -> None:
    rest.ok("GET", "/v1/account", token=trader.access_token)
    samples = gateway_samples(stack_info)
    for cluster in ("auth", "marketdata", "execution", "risk"):
        assert samples[f'envoy_cluster_health_check_success{{envoy_cluster_name="{cluster}"}}'] > 0
        assert samples[f'envoy_cluster_membership_healthy{{envoy_cluster_name="{cluster}"}}'] == 1
    assert samples['envoy_cluster_upstream_rq_total{envoy_cluster_name="execution"}'] > 0
    assert any(name.startswith("envoy_http_ext_authz_ok") for name in samples)
    assert any("local_rate_limit" in name for name in samples)


def counter_total(stack_info: StackInfo, name: str) -> float:
    """The sum of the gateway's samples of metric `name` over all its labels."""
    return sum(
        value
        for sample, value in gateway_samples(stack_info).items()
        if sample == name or sample.startswith(name + "{")
    )


def test_a_valid_access_token_is_verified_by_the_gateway_without_asking_auth(
    rest: Rest, trader: Trader, stack_info: StackInfo
) -> None:
    rest.ok("GET", "/v1/account", token=trader.access_token)  # keys fetched, token cached
    checks = counter_total(stack_info, "envoy_http_ext_authz_ok")
    verified = counter_total(stack_info, "envoy_http_jwt_authn_allowed")
    for _ in range(5):
        account = rest.ok("GET", "/v1/account", token=trader.access_token)["account"]
        assert account["id"] == trader.account_id
    assert counter_total(stack_info, "envoy_http_ext_authz_ok") == checks
    assert counter_total(stack_info, "envoy_http_jwt_authn_allowed") >= verified + 5


def test_api_keys_and_bad_tokens_are_still_answered_by_auths_check(
    rest: Rest, trader: Trader, stack_info: StackInfo
) -> None:
    key = rest.ok(
        "POST",
        "/v1/auth/api-keys",
        token=trader.access_token,
        json={"name": "ops", "scopes": ["read"]},
    )["key"]
    allowed = counter_total(stack_info, "envoy_http_ext_authz_ok")
    assert rest.ok("GET", "/v1/account", api_key=key)["account"]["id"] == trader.account_id
    assert counter_total(stack_info, "envoy_http_ext_authz_ok") == allowed + 1
    # A token the gateway cannot verify is not refused with Envoy's words but with
    # auth's: the same answer as before the gateway verified JWTs itself.
    header, payload, _signature = trader.access_token.split(".")
    refused = rest.call("GET", "/v1/account", token=f"{header}.{payload}.{'A' * 86}")
    assert refused.status_code == 401
    assert refused.headers["grpc-status"] == "16"
    assert refused.text.startswith("The access token is not valid")


def test_health_endpoint_says_every_service_is_reachable(rest: Rest) -> None:
    response = rest.call("GET", "/healthz")
    assert response.status_code == 200


def test_the_openapi_document_is_served_as_checked_in(rest: Rest) -> None:
    response = rest.call("GET", "/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == json.loads(OPENAPI_PATH.read_text())


def test_browser_preflight_of_a_rest_call_is_answered(rest: Rest) -> None:
    response = rest.session.options(
        rest.base_url + "/v1/orders",
        headers={
            "origin": rest.base_url,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type",
        },
        timeout=10,
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == rest.base_url
    assert "authorization" in response.headers["access-control-allow-headers"]
