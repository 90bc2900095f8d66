"""The gateway config rendered from gateway/envoy.yaml.tmpl: what Envoy accepts and routes."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

from cift.runtime.config import CommonConfig, load
from cift.stack.errors import StackError
from cift.stack.gateway import (
    OPENAPI_PATH,
    GatewayParams,
    build_descriptor,
    envoy_argv,
    envoy_binary,
    otlp_collector,
    own_origins,
    render_gateway_config,
    spawn_envoy,
    web_served_files,
)
from cift.stack.ports import free_ports
from cift.stack.probes import probe_http, wait_until_answers
from cift.stack.processes import Child, stop_in_reverse

SERVICES = {
    "auth": "AuthService",
    "marketdata": "MarketDataService",
    "execution": "ExecutionService",
    "risk": "RiskService",
    "backtest": "BacktestService",
}


def write_descriptor(path: Path, services: dict[str, str]) -> Path:
    """A descriptor set declaring one Ping method per service, independent of protos/."""
    descriptors = descriptor_pb2.FileDescriptorSet()
    for package, service in services.items():
        proto = descriptors.file.add(
            name=f"cift/{package}/v1/{package}.proto", package=f"cift.{package}.v1", syntax="proto3"
        )
        proto.message_type.add(name="PingRequest")
        proto.message_type.add(name="PingResponse")
        proto.service.add(name=service).method.add(
            name="Ping",
            input_type=f".cift.{package}.v1.PingRequest",
            output_type=f".cift.{package}.v1.PingResponse",
        )
    path.write_bytes(descriptors.SerializeToString())
    return path


def local_params(descriptor: Path, **overrides: Any) -> GatewayParams:
    values: dict[str, Any] = {
        "listener_host": "127.0.0.1",
        "listener_port": 8080,
        "admin_host": "127.0.0.1",
        "admin_port": 9901,
        "upstreams": {
            "auth": "127.0.0.1:50051",
            "marketdata": "127.0.0.1:50052",
            "execution": "127.0.0.1:50053",
            "risk": "127.0.0.1:50054",
            "backtest": "127.0.0.1:50055",
        },
        "descriptor_path": str(descriptor),
    }
    values.update(overrides)
    return GatewayParams(**values)


def kubernetes_params(descriptor: Path) -> GatewayParams:
    return local_params(
        descriptor,
        listener_host="0.0.0.0",
        admin_host="0.0.0.0",
        upstreams={name: f"{name}.cift.svc.cluster.local:50051" for name in SERVICES},
        upstreams_by_dns=True,
        cors_origins=("https://app.example.com",),
        trusted_proxy_hops=1,
    )


def envoy_validate(config_text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "envoy.yaml"
    config.write_text(config_text)
    return subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def http_manager(config: dict[str, Any]) -> dict[str, Any]:
    listener = config["static_resources"]["listeners"][0]
    manager: dict[str, Any] = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return manager


def test_local_config_passes_envoy_validate(tmp_path: Path) -> None:
    descriptor = write_descriptor(tmp_path / "cift.pb", SERVICES)
    result = envoy_validate(render_gateway_config(local_params(descriptor)), tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]


def test_kubernetes_config_with_per_pod_dns_upstreams_passes_envoy_validate(
    tmp_path: Path,
) -> None:
    descriptor = write_descriptor(tmp_path / "cift.pb", SERVICES)
    result = envoy_validate(render_gateway_config(kubernetes_params(descriptor)), tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("kubernetes", [False, True], ids=["local", "kubernetes"])
def test_with_an_otlp_collector_every_request_is_traced_and_the_config_validates(
    tmp_path: Path, kubernetes: bool
) -> None:
    descriptor = write_descriptor(tmp_path / "cift.pb", SERVICES)
    base = kubernetes_params(descriptor) if kubernetes else local_params(descriptor)
    collector = "otel-collector.monitoring:4317" if kubernetes else "127.0.0.1:4317"
    text = render_gateway_config(dataclasses.replace(base, otlp_collector=collector))
    config = yaml.safe_load(text)
    tracing = http_manager(config)["tracing"]
    assert tracing["provider"]["name"] == "envoy.tracers.opentelemetry"
    assert tracing["random_sampling"]["value"] == 100
    (cluster,) = [
        c for c in config["static_resources"]["clusters"] if c["name"] == "otel_collector"
    ]
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address["socket_address"]["port_value"] == 4317
    # A request's span reaches the collector within a second, not up to 5 s later.
    (layer,) = config["layered_runtime"]["layers"]
    assert layer["static_layer"] == {"tracing.opentelemetry.flush_interval_ms": 1000}
    result = envoy_validate(text, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]


def test_without_a_collector_nothing_is_traced(tmp_path: Path) -> None:
    config = yaml.safe_load(render_gateway_config(local_params(tmp_path / "cift.pb")))
    assert "tracing" not in http_manager(config)
    assert "otel_collector" not in {c["name"] for c in config["static_resources"]["clusters"]}
    assert "layered_runtime" not in config


def test_the_gateway_traces_only_when_the_services_export_over_otlp() -> None:
    exporting = load(
        CommonConfig, {"CIFT_OTEL_EXPORTER": "otlp", "CIFT_OTEL_ENDPOINT": "http://10.0.0.7:4317/"}
    )
    assert otlp_collector(exporting) == "10.0.0.7:4317"
    assert otlp_collector(load(CommonConfig, {"CIFT_OTEL_EXPORTER": "console"})) == ""


def test_envoy_validate_rejects_a_descriptor_missing_a_routed_service(tmp_path: Path) -> None:
    without_risk = {k: v for k, v in SERVICES.items() if k != "risk"}
    descriptor = write_descriptor(tmp_path / "cift.pb", without_risk)
    result = envoy_validate(render_gateway_config(local_params(descriptor)), tmp_path)
    assert result.returncode != 0
    assert "cift.risk.v1.RiskService" in result.stderr + result.stdout


async def start_gateway(config: Path, admin_port: int, log_path: Path) -> Child:
    child = spawn_envoy(envoy_argv(envoy_binary(), config), log_path)
    await wait_until_answers(
        f"gateway {config.name}",
        lambda: probe_http(f"http://127.0.0.1:{admin_port}/ready"),
        30,
        lambda: child.exit_code is None,
    )
    return child


async def test_two_gateways_run_side_by_side(tmp_path: Path) -> None:
    """A test run's Envoy must not collide with a user's `cift up` Envoy (shared memory ids)."""
    descriptor = write_descriptor(tmp_path / "cift.pb", SERVICES)
    ports = free_ports(4)
    gateways: list[Child] = []
    try:
        for index, (listener_port, admin_port) in enumerate([ports[:2], ports[2:]]):
            config = tmp_path / f"envoy-{index}.yaml"
            params = local_params(descriptor, listener_port=listener_port, admin_port=admin_port)
            config.write_text(render_gateway_config(params))
            gateways.append(await start_gateway(config, admin_port, tmp_path / f"gw{index}.log"))
        assert [child.exit_code for child in gateways] == [None, None]
    finally:
        await stop_in_reverse([gateways])


def test_each_grpc_package_routes_to_its_own_http2_cluster(tmp_path: Path) -> None:
    config = yaml.safe_load(render_gateway_config(local_params(tmp_path / "cift.pb")))
    routes = http_manager(config)["route_config"]["virtual_hosts"][0]["routes"]
    prefixes = {
        r["match"]["prefix"]: r["route"]["cluster"]
        for r in routes
        if r["match"].get("prefix", "").startswith("/cift.")
    }
    assert prefixes == {
        "/cift.auth.v1.": "auth",
        "/cift.marketdata.v1.": "marketdata",
        "/cift.execution.v1.": "execution",
        "/cift.risk.v1.": "risk",
        "/cift.backtest.v1.": "backtest",
    }
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    for name, port in [("auth", 50051), ("marketdata", 50052), ("execution", 50053)]:
        cluster = clusters[name]
        assert cluster["type"] == "STATIC"
        options = cluster["typed_extension_protocol_options"]
        http_options = options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
        assert "http2_protocol_options" in http_options["explicit_http_config"]
        endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        assert endpoint["address"]["socket_address"] == {
            "address": "127.0.0.1",
            "port_value": port,
        }


def test_kubernetes_upstreams_resolve_every_pod_by_dns(tmp_path: Path) -> None:
    config = yaml.safe_load(render_gateway_config(kubernetes_params(tmp_path / "cift.pb")))
    risk = next(c for c in config["static_resources"]["clusters"] if c["name"] == "risk")
    assert risk["type"] == "STRICT_DNS"
    endpoint = risk["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"]["address"] == "risk.cift.svc.cluster.local"
    assert config["admin"]["address"]["socket_address"] == {
        "address": "0.0.0.0",
        "port_value": 9901,
    }


def test_filters_authorize_after_grpc_web_and_before_transcoding(tmp_path: Path) -> None:
    config = yaml.safe_load(render_gateway_config(local_params(tmp_path / "cift.pb")))
    names = [f["name"] for f in http_manager(config)["http_filters"]]
    assert names == [
        "envoy.filters.http.cors",
        "envoy.filters.http.health_check",
        "envoy.filters.http.compressor",
        "envoy.filters.http.grpc_web",
        "envoy.filters.http.local_ratelimit",
        "envoy.filters.http.buffer",
        "envoy.filters.http.jwt_authn",
        "envoy.filters.http.ext_authz",
        "envoy.filters.http.lua",
        "envoy.filters.http.grpc_json_transcoder",
        "envoy.filters.http.local_ratelimit.sign_in",
        "envoy.filters.http.router",
    ]


def test_a_verified_jwt_skips_the_auth_check_and_anything_else_goes_to_it(tmp_path: Path) -> None:
    params = local_params(tmp_path / "cift.pb", listener_port=18080)
    params = dataclasses.replace(params, jwt_issuer="issuer-x", jwt_audience="aud-y")
    config = yaml.safe_load(render_gateway_config(params))
    filters = {f["name"]: f["typed_config"] for f in http_manager(config)["http_filters"]}
    jwt = filters["envoy.filters.http.jwt_authn"]
    provider = jwt["providers"]["cift"]
    assert provider["issuer"] == "issuer-x" and provider["audiences"] == ["aud-y"]
    # The header only (no access_token query parameter), passed on for the services.
    assert provider["from_headers"] == [{"name": "authorization", "value_prefix": "Bearer "}]
    assert "from_params" not in provider and provider["forward"] is True
    assert provider["clock_skew_seconds"] == 10
    # Keys from auth's public JWKS route, through this gateway's own listener.
    assert provider["remote_jwks"]["http_uri"]["uri"] == "http://127.0.0.1:18080/v1/auth/jwks"
    jwks = next(c for c in config["static_resources"]["clusters"] if c["name"] == "jwks")
    address = jwks["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address["socket_address"] == {"address": "127.0.0.1", "port_value": 18080}
    # A missing or failed JWT is not refused here: ext_authz decides, with auth's messages.
    [rule] = jwt["rules"]
    assert rule["requires"]["requires_any"]["requirements"] == [
        {"provider_name": "cift"},
        {"allow_missing_or_failed": {}},
    ]
    enabled = filters["envoy.filters.http.ext_authz"]["filter_enabled_metadata"]
    assert enabled == {
        "filter": "envoy.filters.http.jwt_authn",
        "path": [{"key": provider["payload_in_metadata"]}],
        "value": {"present_match": True},
        "invert": True,
    }


def test_a_gateway_on_every_interface_fetches_keys_over_loopback(tmp_path: Path) -> None:
    config = yaml.safe_load(render_gateway_config(kubernetes_params(tmp_path / "cift.pb")))
    filters = {f["name"]: f["typed_config"] for f in http_manager(config)["http_filters"]}
    uri = filters["envoy.filters.http.jwt_authn"]["providers"]["cift"]["remote_jwks"]["http_uri"]
    assert uri["uri"] == "http://127.0.0.1:8080/v1/auth/jwks"


def test_transcoder_rejects_unknown_methods_and_query_parameters_and_prints_zero_values(
    tmp_path: Path,
) -> None:
    descriptor = tmp_path / "cift.pb"
    config = yaml.safe_load(render_gateway_config(local_params(descriptor)))
    filters = {f["name"]: f["typed_config"] for f in http_manager(config)["http_filters"]}
    transcoder = filters["envoy.filters.http.grpc_json_transcoder"]
    assert transcoder["proto_descriptor"] == str(descriptor)
    assert transcoder["services"] == [
        "cift.auth.v1.AuthService",
        "cift.marketdata.v1.MarketDataService",
        "cift.execution.v1.ExecutionService",
        "cift.risk.v1.RiskService",
        "cift.backtest.v1.BacktestService",
    ]
    assert transcoder["request_validation_options"] == {
        "reject_unknown_method": True,
        "reject_unknown_query_parameters": True,
        "reject_binding_body_field_collisions": True,
    }
    assert transcoder["print_options"]["always_print_primitive_fields"] is True
    assert transcoder["print_options"]["preserve_proto_field_names"] is False
    # Server streams over REST: one JSON message per line, not one array at the end.
    assert transcoder["auto_mapping"] is True
    assert transcoder["print_options"]["stream_newline_delimited"] is True


def test_cors_allows_grpc_web_headers_and_exposes_grpc_status(tmp_path: Path) -> None:
    config = yaml.safe_load(render_gateway_config(local_params(tmp_path / "cift.pb")))
    host = http_manager(config)["route_config"]["virtual_hosts"][0]
    policy = host["typed_per_filter_config"]["envoy.filters.http.cors"]
    allowed = {h.strip() for h in policy["allow_headers"].split(",")}
    exposed = {h.strip() for h in policy["expose_headers"].split(",")}
    assert {"x-grpc-web", "x-user-agent", "grpc-timeout", "content-type"} <= allowed
    assert {"authorization", "x-api-key"} <= allowed
    assert {"grpc-status", "grpc-message"} <= exposed


def test_cors_allows_exactly_the_configured_origins_and_answers_other_preflights(
    tmp_path: Path,
) -> None:
    params = local_params(
        tmp_path / "cift.pb", cors_origins=("http://127.0.0.1:8080", "https://app.example.com")
    )
    host = http_manager(yaml.safe_load(render_gateway_config(params)))["route_config"]
    policy = host["virtual_hosts"][0]["typed_per_filter_config"]["envoy.filters.http.cors"]
    assert policy["allow_origin_string_match"] == [
        {"exact": "http://127.0.0.1:8080"},
        {"exact": "https://app.example.com"},
    ]
    assert policy["forward_not_matching_preflights"] is False


def test_no_configured_origin_allows_none(tmp_path: Path) -> None:
    host = http_manager(yaml.safe_load(render_gateway_config(local_params(tmp_path / "c.pb"))))
    policy = host["route_config"]["virtual_hosts"][0]["typed_per_filter_config"][
        "envoy.filters.http.cors"
    ]
    assert policy["allow_origin_string_match"] == []


@pytest.mark.parametrize(
    "origin",
    [
        "null",
        "*",
        "https://*.example.com",
        "https://app.example.com/",
        "ftp://x",
        "HTTPS://A.B",
        "",
    ],
)
def test_an_origin_that_is_not_one_exact_site_is_refused(tmp_path: Path, origin: str) -> None:
    with pytest.raises(StackError, match="CORS origin must be scheme://host"):
        render_gateway_config(local_params(tmp_path / "cift.pb", cors_origins=(origin,)))


def test_the_gateways_own_origins_are_its_local_addresses() -> None:
    assert own_origins("127.0.0.1", 8080) == ("http://127.0.0.1:8080", "http://localhost:8080")
    assert own_origins("0.0.0.0", 8080) == ("http://127.0.0.1:8080", "http://localhost:8080")
    assert own_origins("10.1.2.3", 80) == ("http://10.1.2.3:80",)


def test_services_get_the_client_address_the_gateway_decided_on(tmp_path: Path) -> None:
    params = local_params(tmp_path / "cift.pb", trusted_proxy_hops=2)
    manager = http_manager(yaml.safe_load(render_gateway_config(params)))
    assert manager["use_remote_address"] is True
    assert manager["xff_num_trusted_hops"] == 2
    (added,) = manager["route_config"]["request_headers_to_add"]
    assert added["header"] == {
        "key": "x-cift-client-address",
        "value": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
    }
    assert added["append_action"] == "OVERWRITE_IF_EXISTS_OR_ADD"


def test_listener_and_admin_addresses_come_from_the_parameters(tmp_path: Path) -> None:
    params = local_params(tmp_path / "cift.pb", listener_port=18080, admin_port=19901)
    config = yaml.safe_load(render_gateway_config(params))
    listener = config["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 18080}
    assert config["admin"]["address"]["socket_address"]["port_value"] == 19901


def test_static_upstreams_must_be_ip_addresses(tmp_path: Path) -> None:
    upstreams = {name: "127.0.0.1:50051" for name in SERVICES} | {"risk": "localhost:50054"}
    with pytest.raises(StackError, match="upstream address of risk must be an IP address"):
        render_gateway_config(local_params(tmp_path / "cift.pb", upstreams=upstreams))


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "127.0.0.1:", "127.0.0.1:http", ":50051", "127.0.0.1:70000"]
)
def test_upstream_without_a_valid_port_is_refused(tmp_path: Path, address: str) -> None:
    upstreams = {name: "127.0.0.1:50051" for name in SERVICES} | {"auth": address}
    with pytest.raises(StackError, match="upstream address of auth must be host:port"):
        render_gateway_config(local_params(tmp_path / "cift.pb", upstreams=upstreams))


def test_every_service_needs_an_upstream(tmp_path: Path) -> None:
    upstreams = {"auth": "127.0.0.1:50051", "risk": "127.0.0.1:50054"}
    with pytest.raises(StackError, match="marketdata, execution"):
        render_gateway_config(local_params(tmp_path / "cift.pb", upstreams=upstreams))


def test_template_with_an_unknown_placeholder_is_refused(tmp_path: Path) -> None:
    template = tmp_path / "envoy.yaml.tmpl"
    template.write_text("admin: ${admin_port}\nextra: ${not_a_parameter}\n")
    with pytest.raises(StackError, match="not_a_parameter"):
        render_gateway_config(local_params(tmp_path / "cift.pb"), template)


def test_configured_envoy_binary_that_does_not_exist_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "bin" / "envoy"
    with pytest.raises(StackError, match=f"envoy binary not found at {missing}"):
        envoy_binary(str(missing))


# ---- behaviour of the template against the real protos ----------------------------------


@pytest.fixture(scope="module")
def real_descriptor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The descriptor set of protos/, as the launcher builds it."""
    return build_descriptor(tmp_path_factory.mktemp("descriptor") / "cift.pb")


@dataclass(frozen=True)
class RpcMethod:
    path: str
    package: str
    http_verb: str | None
    client_streaming: bool
    server_streaming: bool


def transcoded_methods(descriptor: Path) -> list[RpcMethod]:
    """Every method of the services the transcoder serves, with its REST verb if any."""
    descriptors = descriptor_pb2.FileDescriptorSet.FromString(descriptor.read_bytes())
    methods = []
    for file in descriptors.file:
        if not file.package.startswith("cift."):
            continue
        for service in file.service:
            for method in service.method:
                verb = None
                if method.options.HasExtension(annotations_pb2.http):
                    verb = method.options.Extensions[annotations_pb2.http].WhichOneof("pattern")
                methods.append(
                    RpcMethod(
                        path=f"/{file.package}.{service.name}/{method.name}",
                        package=file.package.split(".")[1],
                        http_verb=verb,
                        client_streaming=method.client_streaming,
                        server_streaming=method.server_streaming,
                    )
                )
    return methods


def matches(route: dict[str, Any], path: str, method: str) -> bool:
    """Envoy's route matching for the match kinds the template uses."""
    match = route["match"]
    for header in match.get("headers", []):
        assert header["name"] == ":method"
        if header["string_match"]["exact"] != method:
            return False
    if "path" in match:
        return bool(path == match["path"])
    if "prefix" in match:
        return path.startswith(match["prefix"])
    return re.fullmatch(match["safe_regex"]["regex"], path) is not None


def route_for(config: dict[str, Any], path: str, method: str = "POST") -> dict[str, Any]:
    routes = http_manager(config)["route_config"]["virtual_hosts"][0]["routes"]
    return next(route for route in routes if matches(route, path, method))


def rendered(descriptor: Path) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(render_gateway_config(local_params(descriptor)))
    return config


def test_config_with_the_real_descriptor_passes_envoy_validate(
    real_descriptor: Path, tmp_path: Path
) -> None:
    result = envoy_validate(render_gateway_config(local_params(real_descriptor)), tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]


def test_every_public_method_routes_to_its_own_service(real_descriptor: Path) -> None:
    config = rendered(real_descriptor)
    for rpc in transcoded_methods(real_descriptor):
        if rpc.http_verb is None and (rpc.client_streaming or not rpc.server_streaming):
            continue
        route = route_for(config, rpc.path)
        assert route.get("route", {}).get("cluster") == rpc.package, rpc.path


def test_internal_methods_are_refused_with_404_and_unimplemented(real_descriptor: Path) -> None:
    """Methods without a REST binding that are not server streams are service-to-service
    only (risk's CheckOrder and CheckOrders): no protocol reaches them."""
    config = rendered(real_descriptor)
    internal = [
        rpc.path
        for rpc in transcoded_methods(real_descriptor)
        if rpc.http_verb is None and (rpc.client_streaming or not rpc.server_streaming)
    ]
    assert "/cift.risk.v1.RiskService/CheckOrder" in internal
    assert "/cift.risk.v1.RiskService/CheckOrders" in internal
    for path in internal:
        route = route_for(config, path)
        assert route["direct_response"]["status"] == 404, path
        headers = {
            h["header"]["key"]: h["header"]["value"] for h in route["response_headers_to_add"]
        }
        assert headers["grpc-status"] == "12"


def test_server_streams_have_no_timeout_no_idle_cut_off_and_no_retries(
    real_descriptor: Path,
) -> None:
    config = rendered(real_descriptor)
    streams = [
        rpc
        for rpc in transcoded_methods(real_descriptor)
        if rpc.server_streaming and not rpc.client_streaming
    ]
    assert {rpc.path.rsplit("/", 1)[1] for rpc in streams} >= {
        "StreamQuotes",
        "StreamOrderUpdates",
    }
    for rpc in streams:
        action = route_for(config, rpc.path)["route"]
        assert action["timeout"] == "0s", rpc.path
        assert action["idle_timeout"] == "0s", rpc.path
        assert "retry_policy" not in action, rpc.path


def test_only_idempotent_reads_are_retried_and_unary_calls_time_out(real_descriptor: Path) -> None:
    config = rendered(real_descriptor)
    unary = [
        rpc
        for rpc in transcoded_methods(real_descriptor)
        if rpc.http_verb is not None and not rpc.server_streaming
    ]
    retried = {rpc.path for rpc in unary if "retry_policy" in route_for(config, rpc.path)["route"]}
    reads = {rpc.path for rpc in unary if rpc.http_verb == "get"}
    assert retried == reads
    assert "/cift.execution.v1.ExecutionService/SubmitOrder" not in retried
    # CreateBacktest loads its bars from market data before it answers (so an empty
    # range stores nothing), which may take longer than any other unary call.
    slow = {"/cift.backtest.v1.BacktestService/CreateBacktest": "120s"}
    for rpc in unary:
        assert route_for(config, rpc.path)["route"]["timeout"] == slow.get(rpc.path, "10s"), (
            rpc.path
        )
    policy = route_for(config, "/cift.execution.v1.ExecutionService/GetAccount")["route"]
    assert set(policy["retry_policy"]["retry_on"].split(",")) == {
        "unavailable",
        "reset",
        "connect-failure",
        "refused-stream",
    }


def test_sign_in_methods_have_their_own_rate_limit(real_descriptor: Path) -> None:
    params = local_params(real_descriptor, sign_in_per_second=7, sign_in_burst=21)
    config = yaml.safe_load(render_gateway_config(params))
    for method in ("Register", "Login", "RefreshToken"):
        route = route_for(config, f"/cift.auth.v1.AuthService/{method}")
        limit = route["typed_per_filter_config"]["envoy.filters.http.local_ratelimit.sign_in"]
        assert limit["token_bucket"]["max_tokens"] == 21
        assert limit["token_bucket"]["tokens_per_fill"] == 7
        assert limit["rate_limited_as_resource_exhausted"] is True
    other = route_for(config, "/cift.auth.v1.AuthService/GetMe")
    assert "typed_per_filter_config" not in other


def test_gateway_rate_limit_and_body_limit_come_from_the_parameters(tmp_path: Path) -> None:
    params = local_params(
        tmp_path / "cift.pb", rate_limit_per_second=123, rate_limit_burst=456, max_request_bytes=789
    )
    filters = {
        f["name"]: f["typed_config"]
        for f in http_manager(yaml.safe_load(render_gateway_config(params)))["http_filters"]
    }
    bucket = filters["envoy.filters.http.local_ratelimit"]["token_bucket"]
    assert (bucket["tokens_per_fill"], bucket["max_tokens"]) == (123, 456)
    assert filters["envoy.filters.http.buffer"]["max_request_bytes"] == 789
    assert filters["envoy.filters.http.grpc_json_transcoder"]["max_request_body_size"] == 789


@pytest.mark.parametrize("name", ["rate_limit_per_second", "sign_in_burst", "max_request_bytes"])
def test_limits_that_are_not_positive_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(StackError, match=f"{name} must be a positive number, not 0"):
        render_gateway_config(local_params(tmp_path / "cift.pb", **{name: 0}))


def test_ext_authz_asks_auth_and_fails_closed(tmp_path: Path) -> None:
    filters = {
        f["name"]: f["typed_config"]
        for f in http_manager(rendered(tmp_path / "cift.pb"))["http_filters"]
    }
    authz = filters["envoy.filters.http.ext_authz"]
    assert authz["grpc_service"]["envoy_grpc"]["cluster_name"] == "auth"
    assert authz["failure_mode_allow"] is False
    assert authz["status_on_error"]["code"] == "ServiceUnavailable"
    assert [p["exact"] for p in authz["allowed_headers"]["patterns"]] == [
        "authorization",
        "x-api-key",
    ]


def dropped_by_the_gateway(config: dict[str, Any], header: str) -> bool:
    """Whether the early header mutations remove a request header of this name."""
    (extension,) = http_manager(config)["early_header_mutation_extensions"]
    for mutation in extension["typed_config"]["mutations"]:
        matcher = mutation["remove_on_match"]["key_matcher"]
        if "prefix" in matcher and header.startswith(matcher["prefix"]):
            return True
        if "safe_regex" in matcher and re.fullmatch(matcher["safe_regex"]["regex"], header):
            return True
    return False


def test_client_sent_identity_headers_are_dropped_before_any_filter(tmp_path: Path) -> None:
    config = rendered(tmp_path / "cift.pb")
    for header in ("x-cift-identity", "x-cift-user-id", "x-cift-account-id", "x-cift-scopes"):
        assert dropped_by_the_gateway(config, header), header
    assert http_manager(config)["use_remote_address"] is True


@pytest.mark.parametrize(
    "header", ["d'-`", "'", "a{b}", "x y", "grpc-trace-bin", "a-bin", "caf\u00e9"]
)
def test_headers_that_are_not_grpc_metadata_are_dropped(tmp_path: Path, header: str) -> None:
    """A gRPC server fails a whole call (INTERNAL) on such metadata, which HTTP allows."""
    assert dropped_by_the_gateway(rendered(tmp_path / "cift.pb"), header)


@pytest.mark.parametrize(
    "header",
    [
        ":path",
        ":authority",
        "authorization",
        "x-api-key",
        "content-type",
        "grpc-timeout",
        "te",
        "traceparent",
        "x_custom",
        "x.custom",
        "bin",
    ],
)
def test_valid_metadata_and_pseudo_headers_are_kept(tmp_path: Path, header: str) -> None:
    assert not dropped_by_the_gateway(rendered(tmp_path / "cift.pb"), header)


def test_slow_clients_are_cut_off_but_streams_are_not(tmp_path: Path) -> None:
    manager = http_manager(rendered(tmp_path / "cift.pb"))
    assert manager["request_headers_timeout"] == "5s"
    assert manager["request_timeout"] == "10s"
    assert manager["stream_idle_timeout"] == "60s"


def test_access_log_is_json_without_credentials(tmp_path: Path) -> None:
    (log,) = http_manager(rendered(tmp_path / "cift.pb"))["access_log"]
    fields = log["typed_config"]["log_format"]["json_format"]
    assert {"status", "grpc_status", "duration_ms", "path", "upstream"} <= set(fields)
    assert not any("AUTHORIZATION" in v or "API-KEY" in v for v in fields.values())


def test_every_service_cluster_is_health_checked_over_grpc_and_ejects_failing_replicas(
    tmp_path: Path,
) -> None:
    clusters = rendered(tmp_path / "cift.pb")["static_resources"]["clusters"]
    # The gateway's loopback cluster for the JWKS is its own listener, not a service.
    assert {c["name"] for c in clusters} == {*SERVICES, "jwks"}
    for cluster in (c for c in clusters if c["name"] != "jwks"):
        (check,) = cluster["health_checks"]
        assert "grpc_health_check" in check, cluster["name"]
        outliers = cluster["outlier_detection"]
        assert outliers["consecutive_gateway_failure"] == 5, cluster["name"]
        assert outliers["enforcing_consecutive_5xx"] == 0, cluster["name"]


def test_openapi_document_is_served_publicly_from_the_config(tmp_path: Path) -> None:
    config = rendered(tmp_path / "cift.pb")
    route = route_for(config, "/openapi.json", "GET")
    served = json.loads(route["direct_response"]["body"]["inline_string"])
    assert served == json.loads(OPENAPI_PATH.read_text())
    assert route["typed_per_filter_config"]["envoy.filters.http.ext_authz"]["disabled"] is True
    route_config = http_manager(config)["route_config"]
    assert route_config["max_direct_response_body_size_bytes"] > OPENAPI_PATH.stat().st_size


def test_missing_openapi_document_is_named(tmp_path: Path) -> None:
    params = local_params(tmp_path / "cift.pb", openapi_path=tmp_path / "openapi.json")
    with pytest.raises(StackError, match=re.escape("run `python tools/gen_openapi.py`")):
        render_gateway_config(params)


def test_cors_preflight_of_rest_paths_has_a_route_other_paths_get_404(tmp_path: Path) -> None:
    config = rendered(tmp_path / "cift.pb")
    assert "route" in route_for(config, "/v1/orders", "OPTIONS")
    assert route_for(config, "/v1/orders", "GET")["direct_response"]["status"] == 404
    assert route_for(config, "/grpc.health.v1.Health/Check")["direct_response"]["status"] == 404
    assert route_for(config, "/envoy.service.auth.v3.Authorization/Check")["direct_response"] == {
        "status": 404
    }


def write_web_files(root: Path) -> Path:
    for name in web_served_files().values():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(f"contents of {name}")
    return root


def test_the_dashboard_is_one_public_route_per_built_file(tmp_path: Path) -> None:
    web = write_web_files(tmp_path / "web")
    config = yaml.safe_load(
        render_gateway_config(local_params(tmp_path / "cift.pb", web_root=str(web)))
    )
    routes = http_manager(config)["route_config"]["virtual_hosts"][0]["routes"]
    served = {
        route["match"]["path"]: route
        for route in routes
        if "filename" in route.get("direct_response", {}).get("body", {})
    }
    assert set(served) == set(web_served_files())
    for path, route in served.items():
        assert route["direct_response"]["body"]["filename"] == str(web / web_served_files()[path])
        # Public, and never taken for a REST path by the transcoder.
        disabled = route["typed_per_filter_config"]
        assert disabled["envoy.filters.http.ext_authz"]["disabled"] is True
        assert disabled["envoy.filters.http.grpc_json_transcoder"]["disabled"] is True
    assert not any(path.startswith("/v1/") for path in served)


def test_without_a_built_dashboard_the_config_serves_the_api_only(tmp_path: Path) -> None:
    text = render_gateway_config(local_params(tmp_path / "cift.pb"))
    assert "filename:" not in text


def test_the_config_with_the_dashboard_validates_and_needs_its_files(tmp_path: Path) -> None:
    descriptor = write_descriptor(tmp_path / "cift.pb", SERVICES)
    web = write_web_files(tmp_path / "web")
    params = local_params(descriptor, web_root=str(web))
    result = envoy_validate(render_gateway_config(params), tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (web / "index.html").unlink()
    assert envoy_validate(render_gateway_config(params), tmp_path).returncode != 0
