"""Load through the Envoy gateway: order entry and quote reads, REST and gRPC, and what the
gateway adds over calling the service directly.

    python bench/bench_gateway.py [--duration 10] [--clients 48] [--no-fsync]
                                  [--png bench/results/gateway_latency.png]

Starts the whole mesh the way `cift up` does (embedded PostgreSQL, Redis, broker, the
four services and Envoy, on free ports in a throwaway home), signs in one trader per
client, then runs each scenario for `--duration` seconds with `--clients` callers in a
closed loop (each sends its next request when the last one is answered):

- orders: market orders of 1 AAPL, each client alternating buy and sell, over REST
  (POST /v1/orders) and gRPC (SubmitOrder) through the gateway, and gRPC straight to
  the execution service with the same access token (the service verifies it itself);
- quotes: GET /v1/quotes/AAPL and GetLatestQuote, the same three ways;
- overhead: one caller alternating a call through the gateway with one straight to
  the service, so the difference of the medians is the gateway's own cost, not
  queueing, nor the mesh changing between two runs.

Prints a table (throughput, p50/p99/p99.9, errors) and writes a latency histogram PNG.
The load generator runs on the same machine as everything else, so it competes with
the services for CPU; the figures include that.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import uvloop
from google.protobuf import json_format

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from cift.execution.v1 import execution_pb2, execution_pb2_grpc, orders_pb2  # noqa: E402
from cift.marketdata.v1 import marketdata_pb2, marketdata_pb2_grpc  # noqa: E402
from cift.stack.launcher import Stack, StackInfo, StackOptions  # noqa: E402

SYMBOL = "AAPL"
PASSWORD = "benchmark password 1"
# A 429 from the sign-in limit is waited out this many times, 0.1 s apart.
SIGN_IN_ATTEMPTS = 600
# gRPC channels per target: Envoy gives each connection to one worker thread, so one
# connection would leave its second worker idle.
CHANNELS = 4


# ---- a minimal HTTP/1.1 keep-alive client ----------------------------------------------


class HttpConnection:
    """One persistent HTTP/1.1 connection; far cheaper per request than a general client,
    so the load generator takes less of the CPU it shares with the mesh."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, base_url: str) -> HttpConnection:
        parts = urlsplit(base_url)
        assert parts.hostname is not None and parts.port is not None
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        return cls(reader, writer, f"{parts.hostname}:{parts.port}")

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        lines = [f"{method} {path} HTTP/1.1", f"host: {self.host}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body or method in ("POST", "PATCH", "PUT"):
            lines += ["content-type: application/json", f"content-length: {len(body)}"]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if not chunked:
            return status, await self.reader.readexactly(length)
        chunks = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
            chunks.append(await self.reader.readexactly(size + 2))
            if size == 0:
                return status, b"".join(chunk[:-2] for chunk in chunks)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


# ---- scenarios ---------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    group: str
    clients: int
    duration_s: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.duration_s


@dataclass(frozen=True)
class Trader:
    token: str
    account_id: str


Call = Callable[[int, int], Awaitable[str | None]]  # (client, n) → error text or None


async def run_closed_loop(
    name: str, group: str, clients: int, duration_s: float, make_call: Callable[[int], Call]
) -> Result:
    result = Result(name, group, clients, duration_s)
    calls = [make_call(client) for client in range(clients)]
    deadline = time.perf_counter() + duration_s

    async def client_loop(client: int) -> None:
        n = 0
        call = calls[client]
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            error = await call(client, n)
            elapsed_ms = (time.perf_counter() - started) * 1000
            n += 1
            if error is None:
                result.latencies_ms.append(elapsed_ms)
            else:
                result.errors += 1
                result.first_error = result.first_error or error

    started = time.perf_counter()
    await asyncio.gather(*(client_loop(client) for client in range(clients)))
    result.duration_s = time.perf_counter() - started
    return result


async def run_alternating(
    names: tuple[str, str], group: str, duration_s: float, calls: tuple[Call, Call]
) -> tuple[Result, Result]:
    """One caller, one call each way in turn: the gateway's own cost, free of drift.

    Measured one after the other, the second path would see a mesh with more
    resting orders, warmer caches or a busier neighbour than the first; taking
    turns lets whatever changes during the run weigh on both alike. Each side's
    duration is the time spent in its own calls, so req/s reads as for one caller.
    """
    results = (Result(names[0], group, 1, 0.0), Result(names[1], group, 1, 0.0))
    deadline = time.perf_counter() + duration_s
    n = 0
    while time.perf_counter() < deadline:
        for result, call in zip(results, calls, strict=True):
            started = time.perf_counter()
            error = await call(0, n)
            elapsed_s = time.perf_counter() - started
            result.duration_s += elapsed_s
            if error is None:
                result.latencies_ms.append(elapsed_s * 1000)
            else:
                result.errors += 1
                result.first_error = result.first_error or error
        n += 1
    return results


@dataclass(frozen=True)
class OrderFlow:
    """Which orders a scenario sends, and for whom.

    market: 1 AAPL at market, alternating buy and sell on each account, so every order
    fills at once and positions stay flat. limit: a 1-share limit buy 5 % under the
    market, which rests (entry path only, no fill), spread over each caller's accounts
    so buying power and risk's open-order limit last the run.
    """

    kind: str  # "market" or "limit"
    traders: Sequence[Trader]
    clients: int
    limit_price: str = ""

    def trader(self, client: int, n: int) -> Trader:
        per_client = max(1, len(self.traders) // self.clients)
        if self.kind == "market":
            # Buy and then sell on the same account; risk allows 50 orders/s per account.
            return self.traders[(client * per_client + n // 2) % len(self.traders)]
        return self.traders[(client * per_client + n % per_client) % len(self.traders)]

    def side(self, n: int) -> orders_pb2.OrderSide.ValueType:
        if self.kind == "market" and n % 2:
            return orders_pb2.ORDER_SIDE_SELL
        return orders_pb2.ORDER_SIDE_BUY

    def grpc_request(self, n: int) -> execution_pb2.SubmitOrderRequest:
        if self.kind == "market":
            return execution_pb2.SubmitOrderRequest(
                symbol=SYMBOL,
                side=self.side(n),
                type=orders_pb2.ORDER_TYPE_MARKET,
                time_in_force=orders_pb2.TIME_IN_FORCE_DAY,
                qty="1",
            )
        return execution_pb2.SubmitOrderRequest(
            symbol=SYMBOL,
            side=self.side(n),
            type=orders_pb2.ORDER_TYPE_LIMIT,
            time_in_force=orders_pb2.TIME_IN_FORCE_GTC,
            qty="1",
            limit_price=self.limit_price,
        )

    def rest_body(self, n: int) -> bytes:
        body = json_format.MessageToDict(self.grpc_request(n))
        return json.dumps(body).encode()


def rest_orders(connections: Sequence[HttpConnection], flow: OrderFlow) -> Callable[[int], Call]:
    def make(client: int) -> Call:
        connection = connections[client]

        async def call(_client: int, n: int) -> str | None:
            headers = {"authorization": f"Bearer {flow.trader(client, n).token}"}
            status, answer = await connection.request(
                "POST", "/v1/orders", headers, flow.rest_body(n)
            )
            return None if status == 200 else f"{status} {answer[:200]!r}"

        return call

    return make


def rest_quotes(
    connections: Sequence[HttpConnection], traders: Sequence[Trader]
) -> Callable[[int], Call]:
    def make(client: int) -> Call:
        connection = connections[client]
        headers = {"authorization": f"Bearer {traders[client].token}"}

        async def call(_client: int, _n: int) -> str | None:
            status, answer = await connection.request("GET", f"/v1/quotes/{SYMBOL}", headers)
            return None if status == 200 else f"{status} {answer[:200]!r}"

        return call

    return make


def grpc_orders(channels: Sequence[grpc.aio.Channel], flow: OrderFlow) -> Callable[[int], Call]:
    stubs = [execution_pb2_grpc.ExecutionServiceStub(channel) for channel in channels]

    def make(client: int) -> Call:
        stub = stubs[client % len(stubs)]

        async def call(_client: int, n: int) -> str | None:
            metadata = (("authorization", f"Bearer {flow.trader(client, n).token}"),)
            try:
                await stub.SubmitOrder(flow.grpc_request(n), metadata=metadata, timeout=30)
            except grpc.aio.AioRpcError as error:
                return f"{error.code().name}: {error.details()}"
            return None

        return call

    return make


def grpc_quotes(
    channels: Sequence[grpc.aio.Channel], traders: Sequence[Trader]
) -> Callable[[int], Call]:
    stubs = [marketdata_pb2_grpc.MarketDataServiceStub(channel) for channel in channels]

    def make(client: int) -> Call:
        stub = stubs[client % len(stubs)]
        metadata = (("authorization", f"Bearer {traders[client].token}"),)
        request = marketdata_pb2.GetLatestQuoteRequest(symbol=SYMBOL)

        async def call(_client: int, _n: int) -> str | None:
            try:
                await stub.GetLatestQuote(request, metadata=metadata, timeout=30)
            except grpc.aio.AioRpcError as error:
                return f"{error.code().name}: {error.details()}"
            return None

        return call

    return make


def open_channels(target: str) -> list[grpc.aio.Channel]:
    # A local subchannel pool per channel: each is its own TCP connection.
    return [
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(CHANNELS)
    ]


async def sign_in_call(
    connection: HttpConnection, path: str, credentials: bytes
) -> tuple[int, bytes]:
    """POST to a sign-in route, waiting out the gateway's sign-in rate limit (429).

    Register, login and refresh share a tighter limit than the rest (50/s after a
    burst of 200): on a quiet machine signing in a hundred traders outruns it.
    """
    for _ in range(SIGN_IN_ATTEMPTS):
        status, body = await connection.request("POST", path, {}, credentials)
        if status != 429:
            return status, body
        await asyncio.sleep(0.1)
    return status, body


async def sign_in(gateway_url: str, count: int) -> list[Trader]:
    connection = await HttpConnection.open(gateway_url)
    traders = []
    try:
        for index in range(count):
            email = f"bench-{index}-{os.getpid()}-{time.time_ns()}@example.com"
            credentials = json.dumps({"email": email, "password": PASSWORD}).encode()
            status, body = await sign_in_call(connection, "/v1/auth/register", credentials)
            assert status == 200, body
            status, body = await sign_in_call(connection, "/v1/auth/login", credentials)
            assert status == 200, body
            login = json.loads(body)
            claims = json.loads(_b64(login["accessToken"].split(".")[1]))
            traders.append(Trader(login["accessToken"], claims["acct"]))
    finally:
        await connection.close()
    return traders


async def limit_price_under_market(connection: HttpConnection, trader: Trader) -> str:
    """5 % under the bid: the order rests, and stays inside risk's 10 % price collar."""
    headers = {"authorization": f"Bearer {trader.token}"}
    status, body = await connection.request("GET", f"/v1/quotes/{SYMBOL}", headers)
    assert status == 200, body
    bid = Decimal(str(json.loads(body)["quote"]["bid"]))
    return str((bid * Decimal("0.95")).quantize(Decimal("0.01"), rounding=ROUND_DOWN))


def _b64(segment: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


# ---- reporting -----------------------------------------------------------------------------


def table(results: Sequence[Result]) -> str:
    header = (
        f"{'scenario':<34} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'p99.9 ms':>9} {'errors':>7}"
    )
    rows = [header, "-" * len(header)]
    for r in results:
        rows.append(
            f"{r.name:<34} {r.clients:>7} {r.throughput:>8.0f} {r.percentile(0.5):>8.2f} "
            f"{r.percentile(0.99):>8.2f} {r.percentile(0.999):>9.2f} {r.errors:>7}"
        )
    return "\n".join(rows)


def plot(results: Sequence[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups = sorted({r.group for r in results})
    figure, axes = plt.subplots(len(groups), 1, figsize=(9, 3.2 * len(groups)), squeeze=False)
    for axis, group in zip(axes[:, 0], groups, strict=True):
        chosen = [r for r in results if r.group == group and r.latencies_ms]
        low = min(min(r.latencies_ms) for r in chosen)
        high = max(max(r.latencies_ms) for r in chosen)
        bins = np.logspace(np.log10(max(low, 0.05)), np.log10(high), 80)
        for r in chosen:
            axis.hist(
                r.latencies_ms,
                bins=bins,
                histtype="step",
                label=f"{r.name} (p99 {r.percentile(0.99):.1f} ms)",
            )
        axis.set_xscale("log")
        axis.set_xlabel("latency (ms, log scale)")
        axis.set_ylabel("requests")
        axis.set_title(group)
        axis.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


# ---- main ------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace) -> list[Result]:
    home = Path(tempfile.mkdtemp(prefix="cift-bench-gateway-"))
    environ = {**os.environ, "CIFT_AUTH_BCRYPT_COST": "4", "CIFT_LOG_LEVEL": "WARNING"}
    stack = Stack(
        StackOptions(home=home, free_ports=True, durable=not args.no_fsync), environ=environ
    )
    info: StackInfo = await stack.start()
    results: list[Result] = []
    try:
        assert info.gateway_url is not None
        gateway = info.gateway_url
        gateway_target = gateway.removeprefix("http://")
        # Three accounts per caller: resting orders hold buying power and count against
        # risk's open-order limit, so one account would run out within a run.
        traders = await sign_in(gateway, 3 * args.clients)
        http = [await HttpConnection.open(gateway) for _ in range(args.clients)]
        via_gateway = open_channels(gateway_target)
        direct_execution = open_channels(info.grpc_addrs["execution"])
        direct_marketdata = open_channels(info.grpc_addrs["marketdata"])
        d, c = args.duration, args.clients
        limit = await limit_price_under_market(http[0], traders[0])
        market = OrderFlow("market", traders, c)
        resting = OrderFlow("limit", traders, c, limit)
        alone = OrderFlow("limit", traders, 1, limit)
        scenarios: list[tuple[str, str, int, float, Callable[[int], Call]]] = [
            ("limit orders REST via gateway", "orders", c, d, rest_orders(http, resting)),
            ("limit orders gRPC via gateway", "orders", c, d, grpc_orders(via_gateway, resting)),
            ("limit orders gRPC direct", "orders", c, d, grpc_orders(direct_execution, resting)),
            ("market orders gRPC via gateway", "orders", c, d, grpc_orders(via_gateway, market)),
            ("market orders gRPC direct", "orders", c, d, grpc_orders(direct_execution, market)),
            ("quotes REST via gateway", "quotes", c, d, rest_quotes(http, traders)),
            ("quotes gRPC via gateway", "quotes", c, d, grpc_quotes(via_gateway, traders)),
            ("quotes gRPC direct", "quotes", c, d, grpc_quotes(direct_marketdata, traders)),
        ]
        # One caller alternating between the gateway and the service: the overhead.
        pairs = [
            (
                ("1 caller: quotes gRPC via gateway", "1 caller: quotes gRPC direct"),
                (grpc_quotes(via_gateway, traders)(0), grpc_quotes(direct_marketdata, traders)(0)),
            ),
            (
                ("1 caller: orders gRPC via gateway", "1 caller: orders gRPC direct"),
                (grpc_orders(via_gateway, alone)(0), grpc_orders(direct_execution, alone)(0)),
            ),
        ]

        def chosen(*names: str) -> bool:
            return any(word in name for word in args.only for name in names)

        def report(result: Result) -> None:
            results.append(result)
            print(table([result]).splitlines()[-1], flush=True)
            if result.errors:
                print(f"    first error: {result.first_error}", flush=True)

        for name, group, clients, duration_s, make_call in scenarios:
            if chosen(name):
                # Warm connections, caches and the JIT-free paths before measuring.
                await run_closed_loop(name, group, clients, min(1.0, duration_s), make_call)
                report(await run_closed_loop(name, group, clients, duration_s, make_call))
        for names, calls in pairs:
            if chosen(*names):
                await run_alternating(names, "one caller", 1.0, calls)
                for result in await run_alternating(names, "one caller", d, calls):
                    report(result)
        for connection in http:
            await connection.close()
        for channel in (*via_gateway, *direct_execution, *direct_marketdata):
            await channel.close(None)
    finally:
        await stack.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    parser.add_argument("--clients", type=int, default=48, help="concurrent callers")
    parser.add_argument(
        "--no-fsync", action="store_true", help="PostgreSQL without fsync (as the tests run)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        default=[""],
        metavar="WORD",
        help="run only the scenarios whose name contains one of these words",
    )
    parser.add_argument(
        "--png", type=Path, default=REPO_ROOT / "bench" / "results" / "gateway_latency.png"
    )
    args = parser.parse_args(argv)
    command = "python bench/bench_gateway.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    print(f"# {command.strip()}")
    print(f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    uvloop.install()
    results = asyncio.run(bench(args))
    print()
    print(f"# {command.strip()}")
    print(table(results))
    by_name = {r.name: r for r in results}
    for what in ("quotes", "orders"):
        via_result = by_name.get(f"1 caller: {what} gRPC via gateway")
        direct_result = by_name.get(f"1 caller: {what} gRPC direct")
        if via_result is None or direct_result is None:
            continue
        via, direct = via_result.percentile(0.5), direct_result.percentile(0.5)
        print(
            f"gateway overhead at p50, {what}: {via - direct:+.2f} ms ({via:.2f} vs {direct:.2f})"
        )
    plot(results, args.png)
    print(f"latency histogram: {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
