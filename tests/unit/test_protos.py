"""The protobuf contract: API.md's services, RPCs and REST routes, the Kafka event
messages, and the generation tooling that keeps stubs and descriptor set in step."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor, FileDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from cift import protogen
from cift.auth.v1 import auth_pb2
from cift.backtest.v1 import backtest_pb2
from cift.execution.v1 import events_pb2 as execution_events_pb2
from cift.execution.v1 import execution_pb2, orders_pb2
from cift.marketdata.v1 import events_pb2 as marketdata_events_pb2
from cift.marketdata.v1 import marketdata_pb2
from cift.risk.v1 import events_pb2 as risk_events_pb2
from cift.risk.v1 import risk_pb2, rules_pb2

AUTH = "cift.auth.v1.AuthService"
MARKETDATA = "cift.marketdata.v1.MarketDataService"
EXECUTION = "cift.execution.v1.ExecutionService"
RISK = "cift.risk.v1.RiskService"
BACKTEST = "cift.backtest.v1.BacktestService"

# API.md, table by table: (service, rpc, verb, path template, body).
REST_ROUTES = [
    (AUTH, "Register", "post", "/v1/auth/register", "*"),
    (AUTH, "Login", "post", "/v1/auth/login", "*"),
    (AUTH, "RefreshToken", "post", "/v1/auth/refresh", "*"),
    (AUTH, "Logout", "post", "/v1/auth/logout", "*"),
    (AUTH, "GetMe", "get", "/v1/auth/me", ""),
    (AUTH, "CreateApiKey", "post", "/v1/auth/api-keys", "*"),
    (AUTH, "ListApiKeys", "get", "/v1/auth/api-keys", ""),
    (AUTH, "RevokeApiKey", "delete", "/v1/auth/api-keys/{key_id}", ""),
    (AUTH, "GetJwks", "get", "/v1/auth/jwks", ""),
    (MARKETDATA, "ListInstruments", "get", "/v1/instruments", ""),
    (MARKETDATA, "GetInstrument", "get", "/v1/instruments/{symbol}", ""),
    (MARKETDATA, "GetLatestQuote", "get", "/v1/quotes/{symbol}", ""),
    (MARKETDATA, "GetLatestQuotes", "get", "/v1/quotes", ""),
    (MARKETDATA, "GetBars", "get", "/v1/bars/{symbol}", ""),
    (MARKETDATA, "GetTrades", "get", "/v1/trades/{symbol}", ""),
    (MARKETDATA, "GetIndicators", "get", "/v1/indicators/{symbol}", ""),
    (MARKETDATA, "GetClock", "get", "/v1/clock", ""),
    (EXECUTION, "SubmitOrder", "post", "/v1/orders", "*"),
    (EXECUTION, "GetOrder", "get", "/v1/orders/{order_id}", ""),
    (EXECUTION, "ListOrders", "get", "/v1/orders", ""),
    (EXECUTION, "ReplaceOrder", "patch", "/v1/orders/{order_id}", "*"),
    (EXECUTION, "CancelOrder", "delete", "/v1/orders/{order_id}", ""),
    (EXECUTION, "CancelAllOrders", "delete", "/v1/orders", ""),
    (EXECUTION, "ListPositions", "get", "/v1/positions", ""),
    (EXECUTION, "GetPosition", "get", "/v1/positions/{symbol}", ""),
    (EXECUTION, "ClosePosition", "delete", "/v1/positions/{symbol}", ""),
    (EXECUTION, "GetAccount", "get", "/v1/account", ""),
    (EXECUTION, "ListActivities", "get", "/v1/account/activities", ""),
    (EXECUTION, "GetPortfolioHistory", "get", "/v1/account/portfolio/history", ""),
    (RISK, "GetRiskLimits", "get", "/v1/risk/limits", ""),
    (RISK, "UpdateRiskLimits", "patch", "/v1/risk/limits/{account_id}", "*"),
    (RISK, "SetTradingState", "post", "/v1/risk/accounts/{account_id}/trading-state", "*"),
    # The body is the run's spec, so REST clients post {strategy, params, ...} flat.
    (BACKTEST, "CreateBacktest", "post", "/v1/backtests", "spec"),
    (BACKTEST, "GetBacktest", "get", "/v1/backtests/{backtest_id}", ""),
    (BACKTEST, "ListBacktests", "get", "/v1/backtests", ""),
    (BACKTEST, "CancelBacktest", "delete", "/v1/backtests/{backtest_id}", ""),
    (BACKTEST, "ListStrategies", "get", "/v1/strategies", ""),
]

# RPCs with no REST route: (service, rpc, client streams, server streams).
GRPC_ONLY = [
    (MARKETDATA, "StreamQuotes", False, True),
    (MARKETDATA, "StreamTrades", False, True),
    (MARKETDATA, "StreamBars", False, True),
    (MARKETDATA, "ExportBars", False, True),
    (EXECUTION, "StreamOrderUpdates", False, True),
    (RISK, "CheckOrder", False, False),
    (RISK, "CheckOrders", True, True),
    (RISK, "StreamRiskEvents", False, True),
    (BACKTEST, "RunBacktest", False, True),
]

# Kafka topics of API.md / DESIGN.md and the message each carries (the
# `cift-schema` header value).
TOPIC_SCHEMAS = {
    "marketdata.ticks.v1": "cift.marketdata.v1.TickEvent",
    "marketdata.bars.v1": "cift.marketdata.v1.BarEvent",
    "execution.orders.v1": "cift.execution.v1.OrderEvent",
    "execution.fills.v1": "cift.execution.v1.FillEvent",
    "risk.events.v1": "cift.risk.v1.RiskEvent",
}

STUB_MODULES = {
    "auth": ["auth"],
    "marketdata": ["marketdata", "events"],
    "execution": ["orders", "events", "execution"],
    "risk": ["rules", "events", "risk"],
    "backtest": ["backtest"],
}


@pytest.fixture(scope="module")
def descriptor_set(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pb2.FileDescriptorSet:
    """The descriptor set exactly as Envoy gets it."""
    path = protogen.build_descriptor_set(tmp_path_factory.mktemp("gateway") / "cift.pb")
    return descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())


@pytest.fixture(scope="module")
def methods(
    descriptor_set: descriptor_pb2.FileDescriptorSet,
) -> dict[tuple[str, str], descriptor_pb2.MethodDescriptorProto]:
    found = {}
    for file in descriptor_set.file:
        for service in file.service:
            for method in service.method:
                found[(f"{file.package}.{service.name}", method.name)] = method
    return found


def _http_rule(method: descriptor_pb2.MethodDescriptorProto) -> http_pb2.HttpRule | None:
    if not method.options.HasExtension(annotations_pb2.http):
        return None
    return method.options.Extensions[annotations_pb2.http]


@pytest.mark.parametrize(("service", "rpc", "verb", "path", "body"), REST_ROUTES)
def test_api_md_route_is_transcoded_with_its_verb_path_and_body(
    methods: dict[tuple[str, str], descriptor_pb2.MethodDescriptorProto],
    service: str,
    rpc: str,
    verb: str,
    path: str,
    body: str,
) -> None:
    method = methods.get((service, rpc))
    assert method is not None, f"{service}/{rpc} is missing"
    rule = _http_rule(method)
    assert rule is not None, f"{service}/{rpc} has no google.api.http annotation"
    assert rule.WhichOneof("pattern") == verb
    assert getattr(rule, verb) == path
    assert rule.body == body
    # Envoy refuses response_body on non-HttpBody fields, so REST returns the
    # response message itself.
    assert rule.response_body == ""
    assert not rule.additional_bindings
    assert not method.client_streaming and not method.server_streaming


@pytest.mark.parametrize(("service", "rpc", "client_streams", "server_streams"), GRPC_ONLY)
def test_streams_and_internal_checks_have_no_rest_route(
    methods: dict[tuple[str, str], descriptor_pb2.MethodDescriptorProto],
    service: str,
    rpc: str,
    client_streams: bool,
    server_streams: bool,
) -> None:
    method = methods[(service, rpc)]
    assert _http_rule(method) is None
    assert (method.client_streaming, method.server_streaming) == (client_streams, server_streams)


def test_services_have_exactly_the_rpcs_of_api_md(
    methods: dict[tuple[str, str], descriptor_pb2.MethodDescriptorProto],
) -> None:
    documented = {(s, r) for s, r, *_ in REST_ROUTES} | {(s, r) for s, r, *_ in GRPC_ONLY}
    assert set(methods) == documented


def test_path_variables_name_fields_of_the_request(
    descriptor_set: descriptor_pb2.FileDescriptorSet,
    methods: dict[tuple[str, str], descriptor_pb2.MethodDescriptorProto],
) -> None:
    messages = {
        f".{file.package}.{message.name}": message
        for file in descriptor_set.file
        for message in file.message_type
    }
    for service, rpc, _verb, path, _body in REST_ROUTES:
        request = messages[methods[(service, rpc)].input_type]
        variables = [part[1:-1] for part in path.split("/") if part.startswith("{")]
        fields = {field.name: field for field in request.field}
        for variable in variables:
            assert variable in fields, f"{rpc}: {{{variable}}} is not a request field"
            assert fields[variable].type == descriptor_pb2.FieldDescriptorProto.TYPE_STRING


def _clear_json_names(messages: Iterable[descriptor_pb2.DescriptorProto]) -> None:
    for message in messages:
        for field in message.field:
            field.ClearField("json_name")
        _clear_json_names(message.nested_type)


def test_checked_in_stubs_carry_the_same_descriptors_as_the_protos(
    descriptor_set: descriptor_pb2.FileDescriptorSet,
) -> None:
    fresh = {file.name: file for file in descriptor_set.file if file.name.startswith("cift/")}
    for service, modules in STUB_MODULES.items():
        for module_name in modules:
            module = importlib.import_module(f"cift.{service}.v1.{module_name}_pb2")
            stub = descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)
            expected = descriptor_pb2.FileDescriptorProto()
            expected.CopyFrom(fresh.pop(stub.name))
            expected.ClearField("source_code_info")
            _clear_json_names(expected.message_type)  # protoc derives them; stubs omit them
            assert stub == expected, f"{stub.name}: stub is stale, run tools/gen_protos.py"
    assert not fresh, f"protos without stubs: {sorted(fresh)}"


@pytest.mark.parametrize("service", ["auth", "marketdata", "execution", "risk", "backtest"])
def test_grpc_stubs_expose_client_servicer_and_registration(service: str) -> None:
    grpc_module = importlib.import_module(f"cift.{service}.v1.{service}_pb2_grpc")
    name = {"marketdata": "MarketData"}.get(service, service.capitalize()) + "Service"
    assert callable(getattr(grpc_module, f"{name}Stub"))
    assert isinstance(getattr(grpc_module, f"{name}Servicer"), type)
    assert callable(getattr(grpc_module, f"add_{name}Servicer_to_server"))


def _all_messages(file: FileDescriptor) -> Iterator[Descriptor]:
    def walk(message: Descriptor) -> Iterator[Descriptor]:
        yield message
        for nested in message.nested_types:
            yield from walk(nested)

    for message in file.message_types_by_name.values():
        yield from walk(message)


@pytest.mark.parametrize(
    "file",
    [
        auth_pb2.DESCRIPTOR,
        orders_pb2.DESCRIPTOR,
        execution_pb2.DESCRIPTOR,
        execution_events_pb2.DESCRIPTOR,
        rules_pb2.DESCRIPTOR,
        risk_pb2.DESCRIPTOR,
        risk_events_pb2.DESCRIPTOR,
    ],
    ids=lambda f: f.name,
)
def test_orders_accounts_and_risk_carry_no_binary_floats(file: FileDescriptor) -> None:
    """Money and quantities there are decimal strings; a double would lose cents."""
    floats = (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)
    offenders = [
        f"{message.full_name}.{field.name}"
        for message in _all_messages(file)
        for field in message.fields
        if field.type in floats
    ]
    assert offenders == []


@pytest.mark.parametrize(
    ("message", "fields"),
    [
        (backtest_pb2.BacktestSpec, ["cash", "commission"]),
        (
            backtest_pb2.BacktestTrade,
            ["qty", "entry_price", "exit_price", "pnl", "commission"],
        ),
        (backtest_pb2.EquityPoint, ["equity"]),
        (backtest_pb2.BacktestStats, ["final_equity", "peak_equity", "commissions"]),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else "",
)
def test_backtest_money_prices_and_quantities_are_decimal_strings(
    message: type[Message], fields: list[str]
) -> None:
    """Statistics of a run are the engine's doubles; amounts of money are not."""
    by_name = message.DESCRIPTOR.fields_by_name
    assert {name: by_name[name].type for name in fields} == dict.fromkeys(
        fields, FieldDescriptor.TYPE_STRING
    )


def _json_names(message: type[Message]) -> set[str]:
    return {field.json_name for field in message.DESCRIPTOR.fields}


@pytest.mark.parametrize(
    ("message", "names"),
    [
        (auth_pb2.RegisterRequest, {"email", "password", "displayName"}),
        # API.md's POST /v1/backtests body (CreateBacktest's body is the spec).
        (
            backtest_pb2.BacktestSpec,
            {
                "strategy",
                "params",
                "symbol",
                "symbols",
                "timeframe",
                "start",
                "end",
                "cash",
                "commission",
                "engine",
            },
        ),
        (auth_pb2.LoginRequest, {"email", "password"}),
        (auth_pb2.LoginResponse, {"accessToken", "refreshToken", "expiresIn"}),
        (auth_pb2.RefreshTokenRequest, {"refreshToken"}),
        (auth_pb2.LogoutRequest, {"refreshToken"}),
        (auth_pb2.CreateApiKeyRequest, {"name", "scopes"}),
        (marketdata_pb2.Quote, {"bid", "ask", "bidSize", "askSize", "last", "timestamp"}),
        (marketdata_pb2.GetLatestQuotesRequest, {"symbols"}),
        (
            marketdata_pb2.GetBarsRequest,
            {"timeframe", "start", "end", "pageSize", "pageToken"},
        ),
        (marketdata_pb2.GetTradesRequest, {"start", "end"}),
        (marketdata_pb2.GetIndicatorsRequest, {"timeframe", "indicators"}),
        (
            execution_pb2.SubmitOrderRequest,
            {
                "symbol",
                "side",
                "type",
                "timeInForce",
                "qty",
                "notional",
                "limitPrice",
                "stopPrice",
                "trailPrice",
                "trailPercent",
                "clientOrderId",
            },
        ),
        (execution_pb2.ListOrdersRequest, {"status", "symbols", "pageSize", "pageToken"}),
        (
            execution_pb2.Account,
            {
                "cash",
                "equity",
                "buyingPower",
                "longMarketValue",
                "shortMarketValue",
                "realizedPl",
                "unrealizedPl",
                "status",
            },
        ),
        (execution_pb2.GetPortfolioHistoryRequest, {"period", "timeframe"}),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_rest_names_of_api_md_are_the_proto3_json_names(
    message: type[Message], names: set[str]
) -> None:
    assert names <= _json_names(message)


def test_jwks_renders_as_an_rfc7517_key_set() -> None:
    key = auth_pb2.Jwk(kty="OKP", crv="Ed25519", x="11qYAY", kid="k1", alg="EdDSA", use="sig")
    rendered = json_format.MessageToDict(auth_pb2.GetJwksResponse(keys=[key]))
    assert rendered == {
        "keys": [
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "x": "11qYAY",
                "kid": "k1",
                "alg": "EdDSA",
                "use": "sig",
            }
        ]
    }


def test_partial_updates_tell_an_absent_field_from_a_false_or_zero_one() -> None:
    """PATCH bodies: {"allowShort": false} must change the limit, {} must not."""
    absent = json_format.Parse('{"accountId": "a"}', risk_pb2.UpdateRiskLimitsRequest())
    cleared = json_format.Parse('{"allowShort": false, "maxOpenOrders": 0}', absent.__class__())
    assert not absent.HasField("allow_short") and not absent.HasField("max_open_orders")
    assert cleared.HasField("allow_short") and cleared.HasField("max_open_orders")
    replace = json_format.Parse('{"limitPrice": "101.5"}', execution_pb2.ReplaceOrderRequest())
    assert replace.HasField("limit_price") and not replace.HasField("qty")


TS = Timestamp(seconds=1_704_205_800, nanos=123_000_000)
ORDER = orders_pb2.Order(
    id="0d9e7c1e-8a6b-4f43-9d55-7c1e8a6b4f43",
    client_order_id="my-order-1",
    account_id="acct-1",
    symbol="AAPL",
    side=orders_pb2.ORDER_SIDE_BUY,
    type=orders_pb2.ORDER_TYPE_LIMIT,
    time_in_force=orders_pb2.TIME_IN_FORCE_DAY,
    qty="10",
    filled_qty="4",
    filled_avg_price="187.25",
    limit_price="187.30",
    status=orders_pb2.ORDER_STATUS_PARTIALLY_FILLED,
    commission="0.04",
    created_at=TS,
    updated_at=TS,
)
FILL = orders_pb2.Fill(
    id="fill-1",
    order_id=ORDER.id,
    account_id="acct-1",
    symbol="AAPL",
    side=orders_pb2.ORDER_SIDE_BUY,
    qty="4",
    price="187.25",
    commission="0.04",
    timestamp=TS,
)
EVENTS: list[Message] = [
    marketdata_events_pb2.TickEvent(
        quote=marketdata_pb2.Quote(
            symbol="AAPL",
            bid=187.24,
            ask=187.26,
            bid_size=300,
            ask_size=100,
            last=187.25,
            timestamp=TS,
            sequence=9_007_199_254_740_993,  # beyond a double's exact integers
        )
    ),
    marketdata_events_pb2.TickEvent(
        trade=marketdata_pb2.Trade(
            symbol="AAPL", price=187.25, size=0.5, timestamp=TS, sequence=7, conditions=["@"]
        )
    ),
    marketdata_events_pb2.BarEvent(
        bar=marketdata_pb2.Bar(
            symbol="AAPL",
            timeframe="1Min",
            start_time=TS,
            open=187.0,
            high=187.5,
            low=186.9,
            close=187.25,
            volume=12_345.5,
            vwap=187.2,
            trade_count=321,
        )
    ),
    execution_events_pb2.OrderEvent(
        event_id="evt-1",
        account_id="acct-1",
        type=execution_events_pb2.ORDER_EVENT_TYPE_PARTIAL_FILL,
        order=ORDER,
        fill=FILL,
        timestamp=TS,
        sequence=42,
    ),
    execution_events_pb2.FillEvent(
        event_id="evt-2",
        fill=FILL,
        position_qty="4",
        position_avg_entry_price="187.25",
        cash="99250.96",
    ),
    risk_events_pb2.RiskEvent(
        event_id="evt-3",
        account_id="acct-1",
        type=risk_events_pb2.RISK_EVENT_TYPE_REJECTION,
        reason_code=rules_pb2.REASON_CODE_PRICE_COLLAR,
        message="Limit price 250 is 33.5% from the reference price 187.25; the collar is 10%.",
        timestamp=TS,
        request_id="req-1",
        client_order_id="my-order-1",
        symbol="AAPL",
        actor="risk",
    ),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.DESCRIPTOR.name)
def test_kafka_event_survives_the_wire_and_json(event: Message) -> None:
    decoded = type(event).FromString(event.SerializeToString(deterministic=True))
    assert decoded == event
    assert json_format.Parse(json_format.MessageToJson(event), type(event)()) == event


def test_each_topic_has_its_event_message() -> None:
    names = {type(event).DESCRIPTOR.full_name for event in EVENTS}
    assert set(TOPIC_SCHEMAS.values()) == names


def test_tick_event_holds_a_quote_or_a_trade_never_both() -> None:
    event = marketdata_events_pb2.TickEvent(quote=marketdata_pb2.Quote(symbol="AAPL"))
    event.trade.CopyFrom(marketdata_pb2.Trade(symbol="AAPL", price=1.0))
    assert event.WhichOneof("tick") == "trade"
    assert not event.HasField("quote")


def test_generation_is_deterministic(tmp_path: Path) -> None:
    first = protogen.generate(tmp_path / "first")
    second = protogen.generate(tmp_path / "second")
    assert first == second
    assert protogen.compare(tmp_path / "first", tmp_path / "second") == []


def test_drift_check_names_modified_missing_and_stale_files(tmp_path: Path) -> None:
    fresh, checked_in = tmp_path / "fresh", tmp_path / "checked_in"
    protogen.generate(fresh)
    protogen.generate(checked_in)
    (checked_in / "cift/risk/v1/risk_pb2.py").write_text("# edited by hand\n")
    (checked_in / "cift/auth/v1/auth_pb2.pyi").unlink()
    (checked_in / "cift/auth/v1/gone_pb2.py").write_text("")
    assert [str(d) for d in protogen.compare(fresh, checked_in)] == [
        "cift/auth/v1/auth_pb2.pyi: missing",
        "cift/auth/v1/gone_pb2.py: not generated by any .proto",
        "cift/risk/v1/risk_pb2.py: modified",
    ]


def test_a_library_owning_its_service_package_init_is_neither_drift_nor_overwritten(
    tmp_path: Path,
) -> None:
    """cift/backtest is the backtest library and holds its service's stubs in v1/: its
    own __init__.py is the library's, which generation leaves alone."""
    fresh, checked_in = tmp_path / "fresh", tmp_path / "checked_in"
    protogen.generate(fresh)
    protogen.generate(checked_in)
    library_init = checked_in / "cift/backtest/__init__.py"
    library_init.write_text('"""The backtest library."""\nfrom x import run_backtest\n')
    assert protogen.compare(fresh, checked_in) == []
    (checked_in / "cift/backtest/v1/__init__.py").write_text("# edited\n")
    assert [str(d) for d in protogen.compare(fresh, checked_in)] == [
        "cift/backtest/v1/__init__.py: modified"
    ]
    library_init.unlink()
    assert [str(d) for d in protogen.compare(fresh, checked_in)] == [
        "cift/backtest/__init__.py: missing",
        "cift/backtest/v1/__init__.py: modified",
    ]


def test_grpc_modules_only_for_files_that_define_services(tmp_path: Path) -> None:
    written = {p.as_posix() for p in protogen.generate(tmp_path)}
    grpc_modules = sorted(p for p in written if p.endswith("_pb2_grpc.py"))
    expected = [f"cift/{s}/v1/{s}_pb2_grpc.py" for s in sorted(STUB_MODULES)]
    # Envoy's ext_authz service, which auth answers for the gateway.
    expected.append("cift/extauthz/v3/external_auth_pb2_grpc.py")
    assert grpc_modules == sorted(expected)


def test_the_gateway_descriptor_leaves_out_envoys_ext_authz(tmp_path: Path) -> None:
    out = protogen.build_descriptor_set(tmp_path / "cift.pb")
    files = {f.name for f in descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file}
    assert "cift/execution/v1/execution.proto" in files
    assert not any(name.startswith("cift/extauthz/") for name in files)


def test_a_broken_proto_fails_with_protocs_location(tmp_path: Path) -> None:
    broken = tmp_path / "protos" / "cift" / "auth" / "v1" / "auth.proto"
    broken.parent.mkdir(parents=True)
    broken.write_text('syntax = "proto3";\npackage cift.auth.v1;\nmessage User { string id = }\n')
    with pytest.raises(protogen.ProtoGenError, match=r"cift/auth/v1/auth\.proto:3"):
        protogen.build_descriptor_set(tmp_path / "out.pb", proto_root=tmp_path / "protos")
    assert not (tmp_path / "out.pb").exists()


def test_missing_proto_tree_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(protogen.ProtoGenError, match="no protos at"):
        protogen.build_descriptor_set(tmp_path / "out.pb", proto_root=tmp_path / "nowhere")


def test_descriptor_set_is_rewritten_only_when_it_changes(tmp_path: Path) -> None:
    out = protogen.build_descriptor_set(tmp_path / "cift.pb")
    os.utime(out, ns=(1_000_000_000, 1_000_000_000))
    protogen.build_descriptor_set(out)
    assert out.stat().st_mtime_ns == 1_000_000_000
    out.write_bytes(b"stale")
    protogen.build_descriptor_set(out)
    assert descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    assert [p.name for p in tmp_path.iterdir()] == ["cift.pb"]  # no temporary left behind
