"""The table behind the gateway's unknown-field check (gateway/body_fields.lua).

The Lua itself runs only in Envoy: tests/e2e/test_security_probe.py sends it bodies.
"""

from __future__ import annotations

import json
import re

import pytest

from cift.stack.body_fields import lua_node, lua_path_pattern, lua_routes, lua_source, proto_name
from cift.stack.errors import StackError
from cift.stack.gateway import OPENAPI_PATH


def lua_match(pattern: str, path: str) -> bool:
    """Lua's pattern semantics for the subset lua_path_pattern emits."""
    regex = re.sub(r"%(.)", lambda m: re.escape(m.group(1)), pattern)
    return re.fullmatch(regex.strip("^$"), path) is not None


@pytest.mark.parametrize(
    ("json_name", "proto"),
    [("qty", "qty"), ("timeInForce", "time_in_force"), ("maxQuoteAgeS", "max_quote_age_s")],
)
def test_proto_name_inverts_the_default_json_name(json_name: str, proto: str) -> None:
    assert proto_name(json_name) == proto


def test_a_message_accepts_each_field_under_both_names_and_nests() -> None:
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "limitPrice": {"type": "string"},
            "takeProfit": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"limitPrice": {"type": "string"}},
            },
            "symbols": {"type": "array", "items": {"type": "string"}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "params": {"type": "object"},
        },
    }
    node = lua_node(schema, {})
    inner = '{f={["limitPrice"]=ANY,["limit_price"]=ANY}}'
    assert node == (
        '{f={["limitPrice"]=ANY,["limit_price"]=ANY,'
        f'["takeProfit"]={inner},["take_profit"]={inner},'
        '["symbols"]={a=ANY},["labels"]={m=ANY},["params"]=ANY}}'
    )


def test_a_field_name_that_could_break_the_lua_is_refused() -> None:
    schema = {"type": "object", "additionalProperties": False, "properties": {'a"]': {}}}
    with pytest.raises(StackError, match="not an identifier"):
        lua_node(schema, {})


@pytest.mark.parametrize(
    ("template", "path", "matches"),
    [
        ("/v1/orders/{order_id}", "/v1/orders/abc-1", True),
        ("/v1/orders/{order_id}", "/v1/orders/abc/x", False),
        ("/v1/orders/{order_id}", "/v1/ordersXabc", False),
        ("/v1/auth/api-keys", "/v1/auth/api-keys", True),
        ("/cift.risk.v1.RiskService/StreamRiskEvents", "/ciftXrisk.v1.RiskService/Stream", False),
    ],
)
def test_path_patterns_match_only_their_paths(template: str, path: str, matches: bool) -> None:
    assert lua_match(lua_path_pattern(template), path) is matches


def test_every_rest_body_of_the_api_is_checked() -> None:
    document = json.loads(OPENAPI_PATH.read_text())
    with_body = {
        (method.upper(), template)
        for template, operations in document["paths"].items()
        for method, operation in operations.items()
        if isinstance(operation, dict) and "requestBody" in operation
    }
    routes = lua_routes(document)
    assert len(routes) == len(with_body)
    assert any(route.startswith('{"POST","^/v1/orders$"') for route in routes)
    assert lua_source(document).startswith("local ANY = {}\nlocal ROUTES = {\n")
