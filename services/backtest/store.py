"""SQL of the backtest schema: runs, their trades, equity curves and refused orders.

Nothing but SQL and its row mapping lives here. A run's result is written in one
transaction that only succeeds while the run is still RUNNING, so a run canceled
meanwhile keeps nothing of its result.
"""

from __future__ import annotations

import dataclasses
import json
import math
import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

import asyncpg

from services.backtest.model import (
    UNFINISHED,
    EquityPoint,
    Outcome,
    Rejection,
    Run,
    RunSpec,
    RunStatus,
    Stats,
    TradeRecord,
)

_UNFINISHED = [status.value for status in UNFINISHED]
_RUN_COLUMNS = """id, user_id, status, strategy, params, symbols, timeframe, start_at, end_at,
    cash, commission, engine, bar_count, progress, stage, error, created_at, started_at,
    finished_at, stats, margin_multiplier, limits"""


def limits_to_json(limits: Mapping[str, Decimal | int | bool] | None) -> str | None:
    """Pinned limits as JSON, decimals as strings so they read back exact."""
    if limits is None:
        return None
    return json.dumps(
        {
            name: str(value) if isinstance(value, Decimal) else value
            for name, value in limits.items()
        }
    )


def limits_from_json(text: str | None) -> dict[str, Decimal | int | bool] | None:
    if text is None:
        return None
    return {
        name: Decimal(value) if isinstance(value, str) else value
        for name, value in json.loads(text).items()
    }


def stats_to_json(stats: Stats) -> str:
    """The statistics as JSON; a figure that is not a finite number is stored as null."""
    return json.dumps(
        {
            name: None if isinstance(value, float) and not math.isfinite(value) else value
            for name, value in stats.items()
        }
    )


def _run(row: asyncpg.Record) -> Run:
    return Run(
        id=str(row["id"]),
        user_id=row["user_id"],
        status=RunStatus(row["status"]),
        spec=RunSpec(
            strategy=row["strategy"],
            params=json.loads(row["params"]),
            symbols=tuple(row["symbols"]),
            timeframe=row["timeframe"],
            start=row["start_at"],
            end=row["end_at"],
            cash=row["cash"],
            commission=row["commission"],
            engine=row["engine"],
            margin_multiplier=row["margin_multiplier"],
            limits=limits_from_json(row["limits"]),
        ),
        bar_count=row["bar_count"],
        progress=row["progress"],
        stage=row["stage"],
        error=row["error"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        stats=None if row["stats"] is None else json.loads(row["stats"]),
    )


def _uuid(run_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(run_id)
    except ValueError:
        return None


async def insert_run(
    conn: asyncpg.Connection, run_id: str, user_id: str, spec: RunSpec, bar_count: int
) -> Run:
    row = await conn.fetchrow(
        f"""INSERT INTO runs (id, user_id, status, strategy, params, symbols, timeframe,
                              start_at, end_at, cash, commission, engine, bar_count, stage,
                              margin_multiplier, limits)
            VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'queued',
                    $13, $14)
            RETURNING {_RUN_COLUMNS}""",
        uuid.UUID(run_id),
        user_id,
        spec.strategy,
        json.dumps(dict(spec.params)),
        list(spec.symbols),
        spec.timeframe,
        spec.start,
        spec.end,
        spec.cash,
        spec.commission,
        spec.engine,
        bar_count,
        spec.margin_multiplier,
        limits_to_json(spec.limits),
    )
    assert row is not None
    return _run(row)


async def get_run(conn: asyncpg.Connection, run_id: str, *, with_result: bool = True) -> Run | None:
    """The run, with its trades and equity curve when `with_result`; None if unknown."""
    key = _uuid(run_id)
    if key is None:
        return None
    row = await conn.fetchrow(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = $1", key)
    if row is None:
        return None
    run = _run(row)
    if not with_result or run.status is not RunStatus.SUCCEEDED:
        return run
    trades = await conn.fetch(
        """SELECT symbol, side, qty, entry_time, exit_time, entry_price, exit_price, pnl,
                  return_pct, commission
           FROM trades WHERE run_id = $1 ORDER BY seq""",
        key,
    )
    equity = await conn.fetch(
        "SELECT ts, equity, drawdown_pct FROM equity WHERE run_id = $1 ORDER BY seq", key
    )
    rejections = await conn.fetch(
        """SELECT ts AS time, symbol, side, qty, order_type AS type, reason, message
           FROM rejections WHERE run_id = $1 ORDER BY seq""",
        key,
    )
    return dataclasses.replace(
        run,
        rejections=tuple(Rejection(**dict(row)) for row in rejections),
        trades=tuple(TradeRecord(**dict(row)) for row in trades),
        equity=tuple(
            EquityPoint(timestamp=row["ts"], equity=row["equity"], drawdown_pct=row["drawdown_pct"])
            for row in equity
        ),
    )


async def list_runs(
    conn: asyncpg.Connection, user_id: str, after: tuple[datetime, str] | None, limit: int
) -> list[Run]:
    """A user's runs newest first, after the (created_at, id) keyset cursor; no results."""
    if after is None:
        rows = await conn.fetch(
            f"""SELECT {_RUN_COLUMNS} FROM runs WHERE user_id = $1
                ORDER BY created_at DESC, id DESC LIMIT $2""",
            user_id,
            limit,
        )
    else:
        rows = await conn.fetch(
            f"""SELECT {_RUN_COLUMNS} FROM runs
                WHERE user_id = $1 AND (created_at, id) < ($2, $3)
                ORDER BY created_at DESC, id DESC LIMIT $4""",
            user_id,
            after[0],
            uuid.UUID(after[1]),
            limit,
        )
    return [_run(row) for row in rows]


async def start_run(conn: asyncpg.Connection, run_id: str) -> bool:
    """QUEUED → RUNNING; False when the run was canceled (or finished) meanwhile."""
    status = await conn.execute(
        """UPDATE runs SET status = 'running', started_at = now(), heartbeat_at = now(),
                           stage = 'running'
           WHERE id = $1 AND status = 'queued'""",
        uuid.UUID(run_id),
    )
    return bool(status == "UPDATE 1")


async def record_progress(
    conn: asyncpg.Connection, run_id: str, progress: float, stage: str
) -> RunStatus | None:
    """Save progress and the heartbeat of an unfinished run; returns the run's status
    (CANCELED tells the runner to stop), None if the run is gone."""
    status = await conn.fetchval(
        """UPDATE runs SET progress = CASE WHEN status IN ('queued', 'running') THEN $2
                                           ELSE progress END,
                           stage = CASE WHEN status IN ('queued', 'running') THEN $3
                                        ELSE stage END,
                           heartbeat_at = now()
           WHERE id = $1 RETURNING status""",
        uuid.UUID(run_id),
        progress,
        stage,
    )
    return None if status is None else RunStatus(status)


async def save_result(conn: asyncpg.Connection, run_id: str, outcome: Outcome) -> bool:
    """Store the result and mark the run SUCCEEDED, all or nothing; False (and nothing
    written) when the run is no longer RUNNING."""
    key = uuid.UUID(run_id)
    async with conn.transaction():
        status = await conn.execute(
            """UPDATE runs SET status = 'succeeded', progress = 1, stage = 'done',
                               finished_at = now(), heartbeat_at = now(), stats = $2
               WHERE id = $1 AND status = 'running'""",
            key,
            stats_to_json(outcome.stats),
        )
        if status != "UPDATE 1":
            return False
        await conn.copy_records_to_table(
            "trades",
            records=[
                (
                    key,
                    seq,
                    t.symbol,
                    t.side,
                    t.qty,
                    t.entry_time,
                    t.exit_time,
                    t.entry_price,
                    t.exit_price,
                    t.pnl,
                    t.return_pct,
                    t.commission,
                )
                for seq, t in enumerate(outcome.trades)
            ],
            columns=[
                "run_id",
                "seq",
                "symbol",
                "side",
                "qty",
                "entry_time",
                "exit_time",
                "entry_price",
                "exit_price",
                "pnl",
                "return_pct",
                "commission",
            ],
        )
        await conn.copy_records_to_table(
            "equity",
            records=[
                (key, seq, point.timestamp, point.equity, point.drawdown_pct)
                for seq, point in enumerate(outcome.equity)
            ],
            columns=["run_id", "seq", "ts", "equity", "drawdown_pct"],
        )
        await conn.copy_records_to_table(
            "rejections",
            records=[
                (key, seq, r.time, r.symbol, r.side, r.qty, r.type, r.reason, r.message)
                for seq, r in enumerate(outcome.rejections)
            ],
            columns=["run_id", "seq", "ts", "symbol", "side", "qty", "order_type", "reason",
                     "message"],
        )  # fmt: skip
    return True


async def finish_run(
    conn: asyncpg.Connection, run_id: str, status: RunStatus, error: str = ""
) -> bool:
    """End an unfinished run as FAILED or CANCELED; False if it had already ended."""
    result = await conn.execute(
        """UPDATE runs SET status = $2, error = $3, stage = $2, finished_at = now()
           WHERE id = $1 AND status = ANY($4::text[])""",
        uuid.UUID(run_id),
        status.value,
        error,
        _UNFINISHED,
    )
    return bool(result == "UPDATE 1")


async def fail_orphans(conn: asyncpg.Connection, stale_s: float) -> list[str]:
    """Fail unfinished runs whose process stopped beating; returns their ids."""
    rows = await conn.fetch(
        """UPDATE runs SET status = 'failed', stage = 'failed', finished_at = now(),
                           error = 'The process running this backtest stopped; run it again.'
           WHERE status = ANY($1::text[])
             AND heartbeat_at < now() - make_interval(secs => $2)
           RETURNING id""",
        _UNFINISHED,
        stale_s,
    )
    return [str(row["id"]) for row in rows]
