"""The gateway config rendered from gateway/envoy.yaml.tmpl: what Envoy accepts and routes."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import descriptor_pb2

from cift.stack.errors import StackError
from cift.stack.gateway import (
    GatewayParams,
    envoy_argv,
    envoy_binary,
    render_gateway_config,
    spawn_envoy,
)
from cift.stack.ports import free_ports
from cift.stack.probes import probe_http, wait_until_answers
from cift.stack.processes import Child, stop_in_reverse

SERVICES = {
    "auth": "AuthService",
    "marketdata": "MarketDataService",
    "execution": "ExecutionService",
    "risk": "RiskService",
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
        cors_origin_regex="https://app\\.example\\.com",
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
    assert {r["match"]["prefix"]: r["route"]["cluster"] for r in routes} == {
        "/cift.auth.v1.": "auth",
        "/cift.marketdata.v1.": "marketdata",
        "/cift.execution.v1.": "execution",
        "/cift.risk.v1.": "risk",
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


def test_filters_run_cors_then_grpc_web_then_transcoder_then_router(tmp_path: Path) -> None:
    config = yaml.safe_load(render_gateway_config(local_params(tmp_path / "cift.pb")))
    names = [f["name"] for f in http_manager(config)["http_filters"]]
    assert names == [
        "envoy.filters.http.cors",
        "envoy.filters.http.grpc_web",
        "envoy.filters.http.grpc_json_transcoder",
        "envoy.filters.http.router",
    ]


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
    ]
    assert transcoder["request_validation_options"] == {
        "reject_unknown_method": True,
        "reject_unknown_query_parameters": True,
    }
    assert transcoder["print_options"]["always_print_primitive_fields"] is True
    assert transcoder["print_options"]["preserve_proto_field_names"] is False


def test_cors_allows_grpc_web_headers_and_exposes_grpc_status(tmp_path: Path) -> None:
    config = yaml.safe_load(render_gateway_config(local_params(tmp_path / "cift.pb")))
    host = http_manager(config)["route_config"]["virtual_hosts"][0]
    policy = host["typed_per_filter_config"]["envoy.filters.http.cors"]
    allowed = {h.strip() for h in policy["allow_headers"].split(",")}
    exposed = {h.strip() for h in policy["expose_headers"].split(",")}
    assert {"x-grpc-web", "x-user-agent", "grpc-timeout", "content-type"} <= allowed
    assert {"authorization", "x-api-key"} <= allowed
    assert {"grpc-status", "grpc-message"} <= exposed


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
