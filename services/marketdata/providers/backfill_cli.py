"""`python -m services.marketdata backfill` (what `cift marketdata backfill` runs): wiring only.

Dates are whole UTC days, both inclusive (`--start 2024-01-02 --end 2024-03-28`).
Each symbol's bars and trades are one job each, shown as a progress bar of the
date range covered; running the same command again resumes unfinished jobs and
skips finished ones.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import httpx
from tqdm import tqdm

from cift.runtime import db
from cift.runtime.errors import InvalidArgument
from services.marketdata.config import MarketDataConfig
from services.marketdata.instruments import load_universe
from services.marketdata.providers.backfill import Backfill, Job, PageFetcher
from services.marketdata.providers.backoff import Backoff
from services.marketdata.providers.settings import PROVIDERS, chosen_symbols, provider_protocols

NS_PER_DAY = 86_400 * 1_000_000_000
KINDS = ("bars", "trades")
MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--provider", required=True, choices=PROVIDERS)
    parser.add_argument("--symbols", required=True, help="comma-separated, e.g. AAPL,MSFT")
    parser.add_argument("--start", required=True, help="first day, YYYY-MM-DD (UTC)")
    parser.add_argument("--end", required=True, help="last day, YYYY-MM-DD (UTC, inclusive)")
    parser.add_argument("--timeframe", default="1Min", help="bar timeframe (default 1Min)")
    parser.add_argument(
        "--kinds", default="bars,trades", help="what to fetch: bars, trades or both (default)"
    )


def _day_ns(text: str, flag: str) -> int:
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(f"{flag} must be a date like 2024-01-02, not {text!r}.") from None
    return (day - dt.date(1970, 1, 1)).days * NS_PER_DAY


def plan_jobs(provider: str, args: argparse.Namespace, symbols: list[str]) -> list[Job]:
    start_ns = _day_ns(args.start, "--start")
    end_ns = _day_ns(args.end, "--end") + NS_PER_DAY
    if end_ns <= start_ns:
        raise InvalidArgument("--end must not be before --start.")
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if not kinds or any(k not in KINDS for k in kinds):
        raise InvalidArgument("--kinds takes bars, trades or bars,trades.")
    return [
        Job(provider, kind, symbol, args.timeframe if kind == "bars" else "", start_ns, end_ns)
        for symbol in symbols
        for kind in kinds
    ]


async def run_backfill(config: MarketDataConfig, args: argparse.Namespace) -> int:
    protocol = provider_protocols(config, args.provider).history
    universe = load_universe(config.marketdata_universe_file or None)
    jobs = plan_jobs(args.provider, args, chosen_symbols(args.symbols.split(","), universe))
    for job in jobs:
        if job.kind == "bars":
            protocol.bars_request(job.symbol, job.timeframe, job.start_ns, job.end_ns)  # validates
    await db.migrate_dsn(config.database_url, "marketdata", db.load_migrations(MIGRATIONS))
    pool = await db.create_pool(config.database_url, "marketdata", min_size=1, max_size=2)
    total = 0
    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(30.0)) as client:
            fetcher = PageFetcher(
                client,
                protocol,
                Backoff(config.marketdata_feed_backoff_s, config.marketdata_feed_backoff_max_s),
            )
            backfill = Backfill(
                pool, protocol, fetcher, partition_days=config.marketdata_tick_partition_days
            )
            for job in jobs:
                days = (job.end_ns - job.start_ns) / NS_PER_DAY
                with tqdm(total=round(days, 2), desc=job.label, unit="day", file=sys.stderr) as bar:
                    rows = 0

                    def progress(page_rows: int, covered_ns: int, job: Job = job) -> None:
                        nonlocal rows
                        rows += page_rows
                        bar.n = round((covered_ns - job.start_ns) / NS_PER_DAY, 2)
                        bar.set_postfix(rows=rows, refresh=False)
                        bar.refresh()

                    total += await backfill.run(job, progress)
    finally:
        await pool.close()
    print(f"backfill: {total} rows written for {len(jobs)} job(s)", file=sys.stderr)
    return 0
