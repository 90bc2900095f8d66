"""The backtest schema in real PostgreSQL: results all or nothing, cancels win, orphans fail."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from cift.runtime import db
from cift.stack.launcher import StackInfo
from services.backtest import store
from services.backtest.model import EquityPoint, Outcome, RunSpec, RunStatus, TradeRecord

pytestmark = pytest.mark.integration

MIGRATIONS = Path(__file__).resolve().parents[3] / "services" / "backtest" / "migrations"
T0 = datetime(2020, 1, 2, tzinfo=UTC)
SPEC = RunSpec(
    strategy="sma_cross",
    params={"fast": 10.0, "slow": 30.0},
    symbols=("GOOG",),
    timeframe="1Day",
    start=datetime(2020, 1, 1, tzinfo=UTC),
    end=datetime(2021, 1, 1, tzinfo=UTC),
    cash=Decimal("10000"),
    commission=Decimal("0.002"),
    engine="vector",
)
OUTCOME = Outcome(
    stats={"final_equity": 10100.5, "trades": 1, "sharpe": None, "start": "2020-01-02"},
    trades=(
        TradeRecord(
            symbol="GOOG",
            side="long",
            qty=Decimal("10"),
            entry_time=T0,
            exit_time=T0,
            entry_price=Decimal("100.25"),
            exit_price=Decimal("110.3"),
            pnl=Decimal("100.50"),
            return_pct=10.02,
            commission=Decimal("4.21"),
        ),
    ),
    equity=(EquityPoint(timestamp=T0, equity=Decimal("10100.50"), drawdown_pct=0.0),),
)


@pytest_asyncio.fixture(loop_scope="session")
async def pool(infra: StackInfo) -> AsyncIterator[asyncpg.Pool]:
    schema = f"backtest_{uuid.uuid4().hex[:8]}"
    await db.migrate_dsn(infra.database_url, schema, db.load_migrations(MIGRATIONS))
    created = await db.create_pool(infra.database_url, schema)
    try:
        yield created
    finally:
        await created.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await created.close()


async def new_run(conn: asyncpg.Connection, user_id: str = "alice") -> str:
    run_id = str(uuid.uuid4())
    await store.insert_run(conn, run_id, user_id, SPEC, 250)
    return run_id


async def test_a_result_is_stored_whole_with_its_statistics_as_given(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        run_id = await new_run(conn)
        assert await store.start_run(conn, run_id)
        assert await store.save_result(conn, run_id, OUTCOME)
        run = await store.get_run(conn, run_id)
    assert run is not None and run.status is RunStatus.SUCCEEDED
    assert (run.progress, run.stage, run.bar_count) == (1.0, "done", 250)
    assert run.stats == OUTCOME.stats
    assert run.trades == OUTCOME.trades
    assert run.equity == OUTCOME.equity
    assert run.spec == SPEC


async def test_a_result_arriving_after_a_cancel_writes_nothing(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        run_id = await new_run(conn)
        assert await store.start_run(conn, run_id)
        assert await store.finish_run(conn, run_id, RunStatus.CANCELED)
        assert not await store.save_result(conn, run_id, OUTCOME)
        assert await store.record_progress(conn, run_id, 0.9, "running") is RunStatus.CANCELED
        run = await store.get_run(conn, run_id)
        rows = await conn.fetchval(
            "SELECT (SELECT count(*) FROM trades) + (SELECT count(*) FROM equity)"
            " WHERE $1::uuid IS NOT NULL",
            uuid.UUID(run_id),
        )
    assert run is not None
    assert (run.status, run.stats, run.trades, run.stage) == (
        RunStatus.CANCELED,
        None,
        (),
        "canceled",
    )
    assert rows == 0
    async with pool.acquire() as conn:
        # Neither can a canceled run start, nor be ended twice.
        assert not await store.start_run(conn, run_id)
        assert not await store.finish_run(conn, run_id, RunStatus.FAILED, "late")


async def test_only_unfinished_runs_whose_heartbeat_stopped_are_failed(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        stale, beating, done = [await new_run(conn) for _ in range(3)]
        assert await store.start_run(conn, done)
        assert await store.save_result(conn, done, OUTCOME)
        await conn.execute(
            "UPDATE runs SET heartbeat_at = now() - interval '5 minutes' WHERE id = ANY($1)",
            [uuid.UUID(stale), uuid.UUID(done)],
        )
        assert await store.fail_orphans(conn, 60.0) == [stale]
        statuses = {
            run_id: (await store.get_run(conn, run_id, with_result=False)).status  # type: ignore[union-attr]
            for run_id in (stale, beating, done)
        }
    assert statuses == {
        stale: RunStatus.FAILED,
        beating: RunStatus.QUEUED,
        done: RunStatus.SUCCEEDED,
    }


async def test_a_users_runs_page_newest_first_without_anyone_elses(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        mine = [await new_run(conn, "bob") for _ in range(3)]
        await new_run(conn, "carol")
        first = await store.list_runs(conn, "bob", None, 2)
        last = first[-1]
        rest = await store.list_runs(conn, "bob", (last.created_at, last.id), 2)
    assert [r.id for r in first + rest] == mine[::-1]
    assert {r.user_id for r in first + rest} == {"bob"}
