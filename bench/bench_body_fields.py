"""What the gateway's unknown-field check (gateway/body_fields.lua) adds to a REST call.

    python bench/bench_body_fields.py [--requests 3000]

Starts two Envoys from the same minimal config, a listener whose every route answers
200 itself, one with the Lua filter exactly as `cift up` renders it (the table from
gateway/openapi.json) and one without it, so the difference is the filter alone: no
service, transcoder or network hop in either. One client alternates a request to each
over kept-alive connections (so both see the same machine load) and reports p50/p99
per body: a typical order (POST /v1/orders), a replace (PATCH /v1/orders/{id}), and a
64 KB-limit body (ExportBars with thousands of symbols, the scan's worst case).
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cift.stack.body_fields import lua_source, yaml_block
from cift.stack.gateway import OPENAPI_PATH, envoy_binary
from cift.stack.ports import free_ports

_CONFIG = """\
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}
static_resources:
  listeners:
    - name: bench
      address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
      per_connection_buffer_limit_bytes: 1048576
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: bench
                route_config:
                  virtual_hosts:
                    - name: all
                      domains: ["*"]
                      routes:
                        - match: {{ prefix: "/" }}
                          direct_response: {{ status: 200, body: {{ inline_string: "{{}}" }} }}
                http_filters:
                  - name: envoy.filters.http.buffer
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer
                      max_request_bytes: 65536
{lua}
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"""

_LUA = """\
                  - name: envoy.filters.http.lua
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
                      default_source_code:
                        inline_string: |
{code}"""

ORDER = {
    "symbol": "AAPL",
    "side": "ORDER_SIDE_BUY",
    "type": "ORDER_TYPE_LIMIT",
    "timeInForce": "TIME_IN_FORCE_GTC",
    "qty": "10",
    "limitPrice": "187.25",
    "clientOrderId": "3f1c2b9e-8a47-4d0e-9f3a-6c5b7d2e1a90",
    "orderClass": "ORDER_CLASS_BRACKET",
    "takeProfit": {"limitPrice": "195.00"},
    "stopLoss": {"stopPrice": "180.00", "limitPrice": "179.50"},
}
BODIES = {
    "POST /v1/orders (bracket, 330 B)": ("POST", "/v1/orders", json.dumps(ORDER)),
    "PATCH /v1/orders/{id}": (
        "PATCH",
        "/v1/orders/3f1c2b9e-8a47-4d0e-9f3a-6c5b7d2e1a90",
        json.dumps({"qty": "5", "limitPrice": "186.00"}),
    ),
    "ExportBars, 6,000 symbols (63 KB)": (
        "POST",
        "/cift.marketdata.v1.MarketDataService/ExportBars",
        json.dumps({"symbols": [f"S{n:05d}" for n in range(6000)], "timeframe": "1Min"}),
    ),
}


def start_envoy(
    binary: str, workdir: Path, name: str, with_lua: bool
) -> tuple[subprocess.Popen[bytes], int]:
    port, admin = free_ports(2)
    code = yaml_block(lua_source(json.loads(OPENAPI_PATH.read_text())), 26)
    config = _CONFIG.format(port=port, admin=admin, lua=_LUA.format(code=code) if with_lua else "")
    path = workdir / f"{name}.yaml"
    path.write_text(config)
    log = (workdir / f"{name}.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            "-c",
            str(path),
            "--concurrency",
            "1",
            "--log-level",
            "warn",
            "--disable-hot-restart",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/")
            connection.getresponse().read()
            return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"envoy {name} did not start:\n{(workdir / f'{name}.log').read_text()}")


def timed(connection: http.client.HTTPConnection, method: str, path: str, body: bytes) -> float:
    headers = {"content-type": "application/json"}
    started = time.perf_counter()
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    response.read()
    elapsed = time.perf_counter() - started
    if response.status != 200:
        raise SystemExit(f"{method} {path} answered {response.status}")
    return elapsed


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000, help="per body and gateway")
    args = parser.parse_args()
    print("command: python " + " ".join(sys.argv))
    binary = envoy_binary()
    with tempfile.TemporaryDirectory(prefix="bench-body-fields-") as tmp:
        workdir = Path(tmp)
        plain, plain_port = start_envoy(binary, workdir, "plain", with_lua=False)
        checked, checked_port = start_envoy(binary, workdir, "checked", with_lua=True)
        try:
            to_plain = http.client.HTTPConnection("127.0.0.1", plain_port)
            to_checked = http.client.HTTPConnection("127.0.0.1", checked_port)
            print(f"{args.requests:,} requests per body and gateway, alternating")
            print(
                "| body | without p50 µs | with p50 µs | added p50 µs | without p99 µs | with p99 µs | ratio p50 |"
            )
            print("|---|---:|---:|---:|---:|---:|---:|")
            for label, (method, path, text) in BODIES.items():
                body = text.encode()
                for _ in range(200):  # warm-up
                    timed(to_plain, method, path, body)
                    timed(to_checked, method, path, body)
                without: list[float] = []
                with_check: list[float] = []
                for _ in range(args.requests):
                    without.append(timed(to_plain, method, path, body))
                    with_check.append(timed(to_checked, method, path, body))
                p50_without = statistics.median(without) * 1e6
                p50_with = statistics.median(with_check) * 1e6
                print(
                    f"| {label} | {p50_without:.0f} | {p50_with:.0f} | {p50_with - p50_without:+.0f} "
                    f"| {percentile(without, 0.99) * 1e6:.0f} | {percentile(with_check, 0.99) * 1e6:.0f} "
                    f"| {p50_with / p50_without:.2f} |"
                )
        finally:
            for process in (plain, checked):
                process.terminate()
                process.wait(10)


if __name__ == "__main__":
    main()
