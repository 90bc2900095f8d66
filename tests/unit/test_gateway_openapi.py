"""The OpenAPI document of the REST surface: generated from the protos, never stale."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

from cift.protogen import build_descriptor_set

REPO = Path(__file__).resolve().parents[2]


def load_tool() -> ModuleType:
    path = REPO / "tools" / "gen_openapi.py"
    spec = importlib.util.spec_from_file_location("gen_openapi", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_openapi"] = module
    spec.loader.exec_module(module)
    return module


tool = load_tool()


@pytest.fixture(scope="module")
def descriptor_set(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pb2.FileDescriptorSet:
    path = build_descriptor_set(tmp_path_factory.mktemp("openapi") / "cift.pb")
    return descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())


@pytest.fixture(scope="module")
def document(descriptor_set: descriptor_pb2.FileDescriptorSet) -> dict[str, Any]:
    built: dict[str, Any] = tool.build_document(descriptor_set)
    return built


def test_checked_in_document_is_what_the_protos_generate(
    descriptor_set: descriptor_pb2.FileDescriptorSet,
) -> None:
    committed = (REPO / "gateway" / "openapi.json").read_text()
    assert committed == tool.render(tool.build_document(descriptor_set)), (
        "gateway/openapi.json is stale: run `python tools/gen_openapi.py`"
    )


def test_every_rest_binding_of_the_contract_is_documented(document: dict[str, Any]) -> None:
    operations = {(verb.upper(), path) for path, item in document["paths"].items() for verb in item}
    assert {
        ("POST", "/v1/auth/register"),
        ("GET", "/v1/quotes/{symbol}"),
        ("GET", "/v1/bars/{symbol}"),
        ("POST", "/v1/orders"),
        ("PATCH", "/v1/orders/{order_id}"),
        ("DELETE", "/v1/orders/{order_id}"),
        ("GET", "/v1/account"),
        ("POST", "/v1/risk/accounts/{account_id}/trading-state"),
        ("POST", "/v1/backtests"),
        ("GET", "/v1/backtests/{backtest_id}"),
        ("GET", "/v1/backtests"),
        ("DELETE", "/v1/backtests/{backtest_id}"),
        ("GET", "/v1/strategies"),
    } <= operations


def test_internal_methods_are_not_documented(document: dict[str, Any]) -> None:
    paths = set(document["paths"])
    assert not any("CheckOrder" in path for path in paths)


def test_server_streams_are_documented_as_newline_delimited_posts(document: dict[str, Any]) -> None:
    stream = document["paths"]["/cift.marketdata.v1.MarketDataService/StreamQuotes"]["post"]
    assert stream["x-cift-server-stream"] is True
    assert list(stream["responses"]["200"]["content"]) == ["application/x-ndjson"]
    assert "symbols" in stream["requestBody"]["content"]["application/json"]["schema"]["properties"]


def test_only_the_auth_service_public_paths_need_no_credential(document: dict[str, Any]) -> None:
    public = {
        (verb, path)
        for path, item in document["paths"].items()
        for verb, operation in item.items()
        if operation.get("security") == []
    }
    assert public == {
        ("post", "/v1/auth/register"),
        ("post", "/v1/auth/login"),
        ("post", "/v1/auth/refresh"),
        ("get", "/v1/auth/jwks"),
        ("get", "/healthz"),
    }
    assert document["security"] == [{"bearerAuth": []}, {"apiKey": []}]


def test_path_variables_become_path_parameters_and_the_body_leaves_them_out(
    document: dict[str, Any],
) -> None:
    patch = document["paths"]["/v1/orders/{order_id}"]["patch"]
    assert [(p["name"], p["in"], p["required"]) for p in patch["parameters"]] == [
        ("order_id", "path", True)
    ]
    body = patch["requestBody"]["content"]["application/json"]["schema"]
    assert "orderId" not in body["properties"]
    assert {"qty", "limitPrice", "timeInForce"} <= set(body["properties"])


def test_a_message_field_body_is_that_message_posted_flat(document: dict[str, Any]) -> None:
    """CreateBacktest's body is its `spec`: REST clients post the spec's fields themselves."""
    create = document["paths"]["/v1/backtests"]["post"]
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert {"strategy", "params", "symbols", "start", "end", "cash", "engine"} <= set(
        body["properties"]
    )
    assert "spec" not in body["properties"]
    assert "parameters" not in create


def test_get_requests_take_their_fields_as_camel_case_query_parameters(
    document: dict[str, Any],
) -> None:
    parameters = {p["name"]: p for p in document["paths"]["/v1/orders"]["get"]["parameters"]}
    assert {"status", "symbols", "after", "until", "pageSize", "pageToken"} <= set(parameters)
    assert parameters["symbols"]["schema"] == {"type": "array", "items": {"type": "string"}}
    assert (parameters["symbols"]["style"], parameters["symbols"]["explode"]) == ("form", True)
    assert parameters["after"]["schema"]["format"] == "date-time"
    assert parameters["pageSize"]["schema"]["type"] == "integer"


def test_responses_follow_the_transcoder_json_mapping(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    order = schemas["cift.execution.v1.Order"]
    assert order["additionalProperties"] is False
    # Printed even when zero: required. Messages (timestamps) are left out when unset.
    assert {"id", "qty", "filledQty", "status", "extendedHours"} <= set(order["required"])
    assert "filledAt" not in order["required"]
    assert order["properties"]["side"]["enum"] == [
        "ORDER_SIDE_UNSPECIFIED",
        "ORDER_SIDE_BUY",
        "ORDER_SIDE_SELL",
    ]
    assert order["properties"]["createdAt"]["format"] == "date-time"
    quote = schemas["cift.marketdata.v1.Quote"]["properties"]
    assert quote["sequence"]["type"] == "string"  # int64 travels as a string
    account = document["paths"]["/v1/account"]["get"]["responses"]["200"]
    assert account["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/cift.execution.v1.GetAccountResponse"
    }


def test_errors_are_a_json_status_or_the_gateway_plain_text(document: dict[str, Any]) -> None:
    error = document["paths"]["/v1/account"]["get"]["responses"]["default"]["content"]
    assert set(error) == {"application/json", "text/plain"}
    assert document["components"]["schemas"]["google.rpc.Status"]["required"] == [
        "code",
        "message",
    ]


def test_an_unsupported_body_binding_is_refused(
    descriptor_set: descriptor_pb2.FileDescriptorSet,
) -> None:
    changed = descriptor_pb2.FileDescriptorSet()
    changed.CopyFrom(descriptor_set)
    for file in changed.file:
        for service in file.service:
            for method in service.method:
                if method.name == "SubmitOrder":
                    method.options.Extensions[annotations_pb2.http].body = "symbol"
    with pytest.raises(tool.OpenApiError, match='body must be "\\*" or a message field'):
        tool.build_document(changed)


def test_document_is_deterministic_json(descriptor_set: descriptor_pb2.FileDescriptorSet) -> None:
    first = tool.render(tool.build_document(descriptor_set))
    assert first == tool.render(tool.build_document(descriptor_set))
    assert json.loads(first)["openapi"] == "3.0.3"
