"""SubmitOrder throughput and latency through the real risk service and PostgreSQL (no gateway).

Run: python bench/bench_execution_submit.py [--mode service|broker] [--accounts 50]
         [--concurrency 16 --orders 6000 | --rate 1000 --seconds 10] [--feed-rate 0.2]
         [--order-type limit|market] [--synchronous-commit on|off|both [--repeat N]]

The bench starts its own stack with the launcher behind `cift up` (embedded
PostgreSQL with fsync on, Redis, the Kafka-protocol broker, auth, market data
with its simulator, risk, execution; no gateway), registers `--accounts` users
through auth's gRPC API and submits resting limit buys (1 share, 5% under the
bid, so the collar passes and nothing fills) round-robin over the accounts. With
`--order-type market` each submit is instead a 1-share market order that fills as
it is booked: every account trades one symbol, alternating buy and sell, so its
position stays bounded; the latency then includes the fill's transaction. The
simulator runs at `--feed-rate` ticks/s per symbol (default 0.2) so its CPU does
not count against order entry on this 2-core machine; the fill engine has its
own bench.

- `--mode service`: SubmitOrder over gRPC to the execution service process with
  each user's bearer token: the service's interceptor (JWT check), the broker,
  the risk check over gRPC, the database. The client runs in this process.
- `--mode broker`: the execution broker in this process (no execution gRPC
  server), with the real risk and market data services over gRPC, on the
  stack's PostgreSQL in a throwaway schema.

`--synchronous-commit both` measures the embedded PostgreSQL's durable default
(`CIFT_EMBEDDED_POSTGRES_SYNCHRONOUS_COMMIT=true`: a confirmed order is on disk)
against the fast setting (false) in one run, alternating fresh stacks `--repeat`
times, so both see the same machine.

`--concurrency C` runs C submitters back to back (closed loop: the throughput
ceiling). `--rate R` starts R submits per second for `--seconds` whatever the
answers (open loop); latency counts from each submit's scheduled start, so a
backlog shows up in p99 instead of hiding as a lower rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import grpc
from prometheus_client import REGISTRY, generate_latest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.histograms import histogram_totals
from bench.latency import percentile
from cift.auth.v1 import auth_pb2, auth_pb2_grpc
from cift.execution.v1 import execution_pb2, execution_pb2_grpc, orders_pb2
from cift.marketdata.v1 import marketdata_pb2, marketdata_pb2_grpc
from cift.runtime import db
from cift.runtime.clients import open_channel
from cift.runtime.identity import Identity, acting_as
from cift.stack.launcher import Stack, StackInfo, StackOptions
from cift.trading.fills import FillEngine, Quote
from cift.trading.orders import OrderRequest
from cift.trading.vocabulary import OrderType, Side, TimeInForce
from services.execution.adapters.risk_check import RiskCheck
from services.execution.adapters.sql_stores import SQL_STORES
from services.execution.adapters.upstream import MarketReference, RiskGate
from services.execution.app.broker import AccountSettings, Broker

MIGRATIONS = Path(__file__).parents[1] / "services" / "execution" / "migrations"
SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "AMD")
PASSWORD = "bench horse battery 9"
# Execution's histogram of coalesced batches (label `batch`: context_read, order_write, ...).
BATCH_METRIC = "cift_execution_batch_size"


@dataclass(frozen=True)
class Trader:
    user_id: str
    account_id: str
    token: str


async def register(info: StackInfo, count: int) -> list[Trader]:
    async with grpc.aio.insecure_channel(info.grpc_addrs["auth"]) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)

        async def one() -> Trader:
            email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
            user = (
                await stub.Register(
                    auth_pb2.RegisterRequest(email=email, password=PASSWORD, display_name="Bench")
                )
            ).user
            login = await stub.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD))
            return Trader(user.id, user.account_id, login.access_token)

        return list(await asyncio.gather(*(one() for _ in range(count))))


@dataclass(frozen=True)
class Plan:
    """What each submit sends: resting limit buys, or market orders that fill at once."""

    market: bool
    limit_prices: dict[str, Decimal]
    quotes: dict[str, tuple[Decimal, Decimal]]
    accounts: int

    def order(self, n: int) -> tuple[str, Side, OrderType, Decimal | None]:
        """Symbol, side, type and limit price of submit `n` (account `n % accounts`)."""
        if not self.market:
            symbol = SYMBOLS[n % len(SYMBOLS)]
            return symbol, Side.BUY, OrderType.LIMIT, self.limit_prices[symbol]
        account = n % self.accounts
        symbol = SYMBOLS[account % len(SYMBOLS)]
        side = Side.BUY if (n // self.accounts) % 2 == 0 else Side.SELL
        return symbol, side, OrderType.MARKET, None


async def limit_prices(
    info: StackInfo, trader: Trader
) -> tuple[dict[str, Decimal], dict[str, tuple[Decimal, Decimal]]]:
    """5% under each symbol's bid, on the cent grid (inside the collar, never filled); quotes."""
    async with grpc.aio.insecure_channel(info.grpc_addrs["marketdata"]) as channel:
        stub = marketdata_pb2_grpc.MarketDataServiceStub(channel)
        # At the bench's 0.2 ticks/s per symbol, the last of 8 symbols is often first
        # quoted after 20 s; 120 s leaves a chance of about 3e-10 (8 e^-24) that one is not.
        for attempt in range(600):
            if attempt and attempt % 50 == 0:
                print(f"  waiting for the simulator to quote every symbol ({attempt // 5} s)")
            reply = await stub.GetLatestQuotes(
                marketdata_pb2.GetLatestQuotesRequest(symbols=list(SYMBOLS)),
                metadata=(("authorization", f"Bearer {trader.token}"),),
            )
            if len(reply.quotes) == len(SYMBOLS):
                quotes = {
                    s: (Decimal(repr(q.bid)), Decimal(repr(q.ask))) for s, q in reply.quotes.items()
                }
                return {
                    s: (bid * Decimal("0.95")).quantize(Decimal("0.01"), ROUND_DOWN)
                    for s, (bid, _) in quotes.items()
                }, quotes
            await asyncio.sleep(0.2)
    raise SystemExit(
        "the market data simulator did not quote every symbol in 120 s: see its log "
        "(--home DIR keeps it) and try a higher --feed-rate"
    )


Submit = Callable[[int], Awaitable[None]]


SIDE_PB = {Side.BUY: orders_pb2.ORDER_SIDE_BUY, Side.SELL: orders_pb2.ORDER_SIDE_SELL}
TYPE_PB = {
    OrderType.LIMIT: orders_pb2.ORDER_TYPE_LIMIT,
    OrderType.MARKET: orders_pb2.ORDER_TYPE_MARKET,
}


async def service_submitter(
    info: StackInfo, traders: list[Trader], plan: Plan
) -> tuple[Submit, Callable[[], Awaitable[None]]]:
    channel = grpc.aio.insecure_channel(info.grpc_addrs["execution"])
    stub = execution_pb2_grpc.ExecutionServiceStub(channel)
    metadata = [(("authorization", f"Bearer {t.token}"),) for t in traders]

    async def submit(n: int) -> None:
        symbol, side, order_type, limit = plan.order(n)
        await stub.SubmitOrder(
            execution_pb2.SubmitOrderRequest(
                symbol=symbol,
                side=SIDE_PB[side],
                type=TYPE_PB[order_type],
                time_in_force=orders_pb2.TIME_IN_FORCE_DAY
                if limit is None
                else orders_pb2.TIME_IN_FORCE_GTC,
                qty="1",
                limit_price="" if limit is None else str(limit),
            ),
            metadata=metadata[n % len(traders)],
        )

    async def close() -> None:
        await channel.close(None)

    return submit, close


async def broker_submitter(
    info: StackInfo, traders: list[Trader], plan: Plan, pool_size: int
) -> tuple[Submit, Callable[[], Awaitable[None]]]:
    schema = f"execution_bench_{uuid.uuid4().hex[:8]}"
    await db.migrate_dsn(info.database_url, schema, db.load_migrations(MIGRATIONS))
    pool = await db.create_pool(info.database_url, schema, min_size=pool_size, max_size=pool_size)
    risk_channel = open_channel(info.grpc_addrs["risk"])
    market_channel = open_channel(info.grpc_addrs["marketdata"])
    risk = RiskGate(risk_channel)
    broker = Broker(
        pool,
        FillEngine(),
        MarketReference(market_channel),
        RiskCheck(risk),
        AccountSettings(Decimal(100000), Decimal(1)),
        SQL_STORES,
    )
    # No tick feed runs into this in-process engine: give it the current quotes so
    # market orders fill as they are booked, as in the service.
    for symbol, (bid, ask) in plan.quotes.items():
        broker.engine.on_quote(Quote(symbol, bid, ask, Decimal(10**6), Decimal(10**6), 0))
    identities = [
        Identity(t.user_id, t.account_id, frozenset({"read", "trade"}), t.token) for t in traders
    ]

    async def submit(n: int) -> None:
        symbol, side, order_type, limit = plan.order(n)
        identity = identities[n % len(identities)]
        with acting_as(identity):
            await broker.submit(
                identity.account_id,
                OrderRequest(
                    symbol,
                    side,
                    order_type,
                    TimeInForce.DAY if limit is None else TimeInForce.GTC,
                    qty=Decimal(1),
                    limit_price=limit,
                ),
            )

    async def close() -> None:
        print(
            f"  (risk checks over the CheckOrders stream: {risk.streamed} "
            f"in {risk.messages} messages)"
        )
        await risk.close()
        await risk_channel.close(None)
        await market_channel.close(None)
        await pool.execute(f"DROP SCHEMA {schema} CASCADE")
        await pool.close()

    return submit, close


BatchTotals = dict[str, tuple[float, float]]  # batch kind -> (batches, items)


async def batch_totals(metrics_url: str | None) -> BatchTotals:
    """The execution process's coalesced batches so far (this process's in broker mode)."""
    if metrics_url is None:
        text = generate_latest(REGISTRY).decode()
    else:
        url = metrics_url
        text = await asyncio.to_thread(
            lambda: urllib.request.urlopen(url, timeout=5).read().decode()
        )
    totals = histogram_totals(
        text, lambda family, labels: labels["batch"] if family == BATCH_METRIC else None
    )
    return {kind: (count, items) for kind, (items, count) in totals.items()}


def report_batches(before: BatchTotals, after: BatchTotals) -> None:
    """Mean batch sizes over the measured run: fuller batches cost less per order."""
    parts = []
    for kind, (count, items) in sorted(after.items()):
        count -= before.get(kind, (0.0, 0.0))[0]
        items -= before.get(kind, (0.0, 0.0))[1]
        if count:
            parts.append(f"{kind} {items / count:.1f} per batch ({count:,.0f} batches)")
    print("  (execution batches: " + "; ".join(parts) + ")")


async def closed_loop(submit: Submit, orders: int, concurrency: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    counter = iter(range(orders))

    async def worker() -> None:
        for n in counter:
            started = time.perf_counter()
            await submit(n)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


async def open_loop(submit: Submit, rate: float, seconds: float) -> tuple[list[float], float]:
    latencies: list[float] = []
    tasks: list[asyncio.Task[None]] = []
    total = int(rate * seconds)

    async def one(n: int, due: float) -> None:
        await submit(n)
        latencies.append(time.perf_counter() - due)

    started = time.perf_counter()
    for n in range(total):
        due = started + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n, due)))
    await asyncio.gather(*tasks)
    return latencies, time.perf_counter() - started


async def first_call(submit: Submit, attempts: int = 60) -> None:
    for attempt in range(attempts):
        try:
            await submit(0)
            return
        except Exception:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=("service", "broker"), default="service")
    parser.add_argument("--accounts", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--orders", type=int, default=6000)
    parser.add_argument("--rate", type=float, default=0.0, help="open loop at this rate")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--order-type",
        choices=("limit", "market"),
        default="limit",
        help="limit: resting buys that never fill; market: buy/sell per account, filled at once",
    )
    parser.add_argument("--pool", type=int, default=8, help="broker mode: connections")
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument(
        "--feed-rate",
        default="0.2",
        help="simulator ticks/s per symbol (CIFT_MARKETDATA_RATE); low keeps the feed's CPU out",
    )
    parser.add_argument(
        "--home", type=Path, default=None, help="keep the stack's data and logs here"
    )
    parser.add_argument(
        "--no-fsync",
        action="store_true",
        help="embedded PostgreSQL without fsync (shows what commit flushes cost)",
    )
    parser.add_argument(
        "--synchronous-commit",
        choices=("on", "off", "both"),
        default="on",
        help="embedded PostgreSQL's synchronous_commit; both: alternate on and off",
    )
    parser.add_argument("--repeat", type=int, default=1, help="with both: rounds of on, off")
    args = parser.parse_args()
    print("command: python " + " ".join(sys.argv))
    if args.synchronous_commit == "both":
        # Each setting in a process of its own: a second stack started from a process
        # whose gRPC threads already ran fails to fork its services cleanly.
        for setting in ["on", "off"] * args.repeat:
            subprocess.run(
                [sys.executable, __file__, *sys.argv[1:], "--synchronous-commit", setting],
                check=True,
            )
        return
    asyncio.run(run(args))


async def run(args: argparse.Namespace) -> None:
    latencies, elapsed, shape = await measure(args, args.synchronous_commit == "on")
    commit = f"synchronous_commit={args.synchronous_commit}"
    report(f"{args.mode} {args.order_type}, {commit}", shape, args.accounts, latencies, elapsed)


async def measure(
    args: argparse.Namespace, synchronous_commit: bool
) -> tuple[list[float], float, str]:
    """One fresh stack, warmed up, then the measured submits: latencies, seconds, load shape."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CIFT_")}
    environ["CIFT_AUTH_BCRYPT_COST"] = "4"  # registration speed only; not measured
    environ["CIFT_LOG_LEVEL"] = "WARNING"
    environ["CIFT_MARKETDATA_RATE"] = args.feed_rate
    environ["CIFT_EMBEDDED_POSTGRES_SYNCHRONOUS_COMMIT"] = str(synchronous_commit).lower()
    with contextlib.ExitStack() as scope:
        home = args.home or Path(
            scope.enter_context(tempfile.TemporaryDirectory(prefix="cift-bench-"))
        )
        stack = Stack(
            StackOptions(
                home, with_gateway=False, free_ports=True, durable=not args.no_fsync, fresh=True
            ),
            environ,
        )
        info = await stack.start()
        try:
            traders = await register(info, args.accounts)
            prices, quotes = await limit_prices(info, traders[0])
            plan = Plan(args.order_type == "market", prices, quotes, len(traders))
            if args.mode == "service":
                submit, close = await service_submitter(info, traders, plan)
            else:
                submit, close = await broker_submitter(info, traders, plan, args.pool)
            try:
                # One call first: a verifier's JWKS cache is filled by its first caller,
                # and risk prices market orders only once its tick consumer has caught up.
                await first_call(submit)
                await closed_loop(submit, args.warmup, args.concurrency)
                metrics_url = info.metrics_urls["execution"] if args.mode == "service" else None
                batches_before = await batch_totals(metrics_url)
                if args.rate:
                    latencies, elapsed = await open_loop(submit, args.rate, args.seconds)
                    shape = f"open loop {args.rate:,.0f}/s"
                else:
                    latencies, elapsed = await closed_loop(submit, args.orders, args.concurrency)
                    shape = f"closed loop x{args.concurrency}"
                report_batches(batches_before, await batch_totals(metrics_url))
            finally:
                await close()
        finally:
            await stack.stop()
    return latencies, elapsed, shape


def report(mode: str, shape: str, accounts: int, latencies: list[float], elapsed: float) -> None:
    ms: Any = [x * 1000 for x in latencies]
    print(
        "| mode | load | accounts | orders | orders/s | p50 ms | p99 ms | mean ms |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|\n"
        f"| {mode} | {shape} | {accounts} | {len(ms):,} | {len(ms) / elapsed:,.0f} "
        f"| {percentile(ms, 0.50):.2f} | {percentile(ms, 0.99):.2f} | {statistics.fmean(ms):.2f} |"
    )


if __name__ == "__main__":
    main()
