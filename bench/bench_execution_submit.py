"""SubmitOrder throughput and latency through the broker and PostgreSQL (no gateway, no gRPC).

Run: CIFT_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \
     python bench/bench_execution_submit.py [--orders 3000] [--concurrency 16]

Each submit is the full transaction of the service: idempotency lookup, account
context, the pre-trade check (an in-process stand-in answering at once: the risk
service's own cost is measured by its bench), the conditional buying-power UPDATE,
the order INSERT, the order event and its outbox row, then the engine booking.
Orders are resting limits spread over 200 accounts in a throwaway schema.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from decimal import Decimal
from pathlib import Path

import asyncpg

from cift.risk.v1 import risk_pb2
from cift.runtime import db
from services.execution.broker import AccountSettings, Broker
from services.execution.fills import FillEngine
from services.execution.orders import Instrument, OrderRequest, OrderType, Side, TimeInForce
from services.execution.upstream import MarketClock

MIGRATIONS = Path(__file__).parents[1] / "services" / "execution" / "migrations"


class Market:
    async def instrument(self, symbol: str) -> Instrument:
        return Instrument(symbol, Decimal("0.01"), Decimal(1), fractionable=False)

    async def latest_prices(
        self, symbols: list[str]
    ) -> dict[str, tuple[Decimal, Decimal, Decimal]]:
        return {}

    async def clock(self) -> MarketClock:
        return MarketClock(0, True, 0)


class Risk:
    async def check(self, request: risk_pb2.CheckOrderRequest) -> risk_pb2.CheckOrderResponse:
        return risk_pb2.CheckOrderResponse(request_id=request.request_id, approved=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--pool", type=int, default=8)
    args = parser.parse_args()
    dsn = os.environ.get("CIFT_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    schema = f"execution_bench_{uuid.uuid4().hex[:8]}"
    await db.migrate_dsn(dsn, schema, db.load_migrations(MIGRATIONS))
    pool = await db.create_pool(dsn, schema, min_size=args.pool, max_size=args.pool)
    try:
        broker = Broker(
            pool, FillEngine(), Market(), Risk(), AccountSettings(Decimal(10**9), Decimal(1))
        )
        accounts = [str(uuid.uuid4()) for _ in range(200)]
        for account in accounts:
            await broker.ensure_account(account)
        latencies: list[float] = []
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(args.orders):
            queue.put_nowait(n)

        async def worker() -> None:
            while not queue.empty():
                n = queue.get_nowait()
                request = OrderRequest(
                    "BENCH",
                    Side.BUY,
                    OrderType.LIMIT,
                    TimeInForce.GTC,
                    qty=Decimal(1),
                    limit_price=Decimal("10.00") + Decimal(n % 100) / 100,
                )
                started = time.perf_counter()
                await broker.submit(accounts[n % len(accounts)], request)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - started
        latencies.sort()
        print(
            "command: CIFT_DATABASE_URL=... python bench/bench_execution_submit.py "
            f"--orders {args.orders} --concurrency {args.concurrency} --pool {args.pool}"
        )
        print(f"{'orders':<18}{len(latencies):>10,}")
        print(f"{'orders/s':<18}{len(latencies) / elapsed:>10,.0f}")
        print(f"{'p50 (ms)':<18}{latencies[len(latencies) // 2] * 1000:>10.2f}")
        print(f"{'p99 (ms)':<18}{latencies[int(len(latencies) * 0.99)] * 1000:>10.2f}")
    finally:
        await pool.close()
        conn = await asyncpg.connect(dsn)
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
