"""Historical bars and trades from a provider's REST API into the market data store.

One job is (provider, bars|trades, symbol, timeframe, start, end). It walks the
provider's pages (`next_page_token` / `next_url`) and writes each page in one
transaction with the job's progress, so an interrupted run resumes at the next
page and never writes a page twice. Trades go into the ticks table as the ingest
writes live trades (same rows, numbered like the feed's sequences); the
provider's bars go into the bars table closed, and only bars whose interval has
ended (the ingest owns the open one). Backfilled ticks do not pass through
Kafka: their sequences would overtake the live feed's and make the ingest skip
live ticks as replays, and the bar builder drops trades older than its clock.

HTTP 429 (and 5xx) are retried after `Retry-After` (seconds or a date), else the
`X-RateLimit-Reset` time, else a jittered exponential delay. Credentials travel
in headers only; httpx's request log is held above INFO.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
from prometheus_client import Counter

from cift.runtime.errors import FailedPrecondition, InvalidArgument, Unavailable
from services.marketdata import store
from services.marketdata.bars import parse_timeframe
from services.marketdata.providers.backoff import Backoff
from services.marketdata.providers.protocol import HistoryProtocol, Page, PageRequest

log = logging.getLogger(__name__)
for _noisy in ("httpx", "httpcore"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)

RATE_LIMITED = Counter(
    "cift_marketdata_backfill_rate_limited_total", "HTTP 429 answers waited out.", ["provider"]
)
MAX_WAIT_S = 300.0
MAX_ATTEMPTS = 10


@dataclass(frozen=True)
class Job:
    provider: str
    kind: str  # "bars" or "trades"
    symbol: str
    timeframe: str  # "" for trades
    start_ns: int
    end_ns: int

    @property
    def key(self) -> tuple[str, str, str, str, int, int]:
        return (self.provider, self.kind, self.symbol, self.timeframe, self.start_ns, self.end_ns)

    @property
    def label(self) -> str:
        return f"{self.symbol} {self.timeframe or 'trades'}"


def retry_after_s(response: httpx.Response, now_s: float) -> float | None:
    """How long the provider asked us to wait, from its headers; None if it did not say."""
    value = response.headers.get("retry-after")
    if value is not None:
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            moment = None
        if moment is not None:
            return max(0.0, moment.timestamp() - now_s)
    reset = response.headers.get("x-ratelimit-reset")
    if reset is not None and reset.strip().isdigit():
        return max(0.0, float(reset) - now_s)
    return None


class PageFetcher:
    """GETs one page, waiting out rate limits and server errors; other errors are final."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        protocol: HistoryProtocol,
        backoff: Backoff,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.protocol = protocol
        self.backoff = backoff
        self.sleep = sleep
        self.waits: list[float] = []

    async def get(self, request: PageRequest) -> Any:
        headers = self.protocol.headers()
        for _attempt in range(MAX_ATTEMPTS):
            try:
                response = await self.client.get(
                    request.url, params=request.params or None, headers=headers
                )
            except httpx.TransportError as exc:
                wait = self.backoff.next_delay_s()
                log.warning("%s: %s; retrying in %.1f s", self.protocol.name, exc, wait)
                await self._wait(wait)
                continue
            status = response.status_code
            if status == 429 or status >= 500:
                asked = retry_after_s(response, time.time())
                wait = min(MAX_WAIT_S, asked if asked is not None else self.backoff.next_delay_s())
                if status == 429:
                    RATE_LIMITED.labels(self.protocol.name).inc()
                log.warning(
                    "%s answered %d; waiting %.1f s before asking again",
                    self.protocol.name,
                    status,
                    wait,
                )
                await self._wait(wait)
                continue
            if status in (401, 403):
                raise FailedPrecondition(
                    f"{self.protocol.name} refused the credentials or the plan ({status}): "
                    f"{response.text[:200]}"
                )
            if status >= 400:
                raise InvalidArgument(
                    f"{self.protocol.name} refused the request ({status}): {response.text[:200]}"
                )
            self.backoff.reset()
            return response.json()
        raise Unavailable(f"{self.protocol.name} kept failing after {MAX_ATTEMPTS} attempts.")

    async def _wait(self, seconds: float) -> None:
        self.waits.append(seconds)
        await self.sleep(seconds)


class Backfill:
    """Runs jobs against one provider and writes into the market data schema."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        protocol: HistoryProtocol,
        fetcher: PageFetcher,
        *,
        partition_days: int,
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.pool = pool
        self.protocol = protocol
        self.fetcher = fetcher
        self.partition_days = partition_days
        self.now_ns = now_ns
        self._next_sequence = now_ns() + 1
        self._partitions: set[int] = set()

    def first_request(self, job: Job) -> PageRequest:
        if job.kind == "bars":
            return self.protocol.bars_request(job.symbol, job.timeframe, job.start_ns, job.end_ns)
        return self.protocol.trades_request(job.symbol, job.start_ns, job.end_ns)

    async def run(self, job: Job, on_progress: Callable[[int, int], None]) -> int:
        """Page through `job` from where it stopped; `on_progress(rows, covered_ns)` per page.

        Returns the rows written by this call (0 when the job was already done).
        """
        async with self.pool.acquire() as conn:
            saved = await store.load_backfill_job(conn, job.key)
        if saved is not None and saved["done"]:
            on_progress(0, job.end_ns)
            return 0
        request: PageRequest | None = (
            PageRequest.from_json(saved["next_request"])
            if saved is not None and saved["next_request"]
            else self.first_request(job)
        )
        written = 0
        while request is not None:
            body = await self.fetcher.get(request)
            page = self._parse(job, request, body)
            rows, covered_ns = await self._write(job, page)
            written += rows
            on_progress(rows, covered_ns)
            request = page.next
        return written

    def _parse(self, job: Job, request: PageRequest, body: Any) -> Page:
        try:
            if job.kind == "bars":
                return self.protocol.parse_bars(request, job.symbol, job.timeframe, body)
            return self.protocol.parse_trades(request, job.symbol, body)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidArgument(
                f"{self.protocol.name} sent a page that does not match its documented shape: {exc}"
            ) from exc

    async def _write(self, job: Job, page: Page) -> tuple[int, int]:
        covered_ns = job.start_ns
        created: set[int] = set()
        next_request = page.next.to_json() if page.next is not None else None
        async with self.pool.acquire() as conn, conn.transaction():
            if job.kind == "bars":
                bar_ns = parse_timeframe(job.timeframe).ns
                now_ns = self.now_ns()
                bars = [
                    b
                    for b in page.bars
                    if job.start_ns <= b.start_ns < job.end_ns and b.start_ns + bar_ns <= now_ns
                ]
                await store.upsert_bars(conn, bars, [True] * len(bars))
                rows = len(bars)
                if bars:
                    covered_ns = max(b.start_ns for b in bars)
            else:
                trades = [t for t in page.trades if job.start_ns <= t.ts_ns < job.end_ns]
                if trades:
                    starts = {
                        store.partition_bounds(t.ts_ns, self.partition_days)[0] for t in trades
                    }
                    created = starts - self._partitions
                    if created:
                        await store.ensure_partitions(conn, created, self.partition_days)
                    await store.copy_ticks(conn, store.trade_rows(trades, self._next_sequence))
                    covered_ns = max(t.ts_ns for t in trades)
                rows = len(trades)
            if page.next is None:
                covered_ns = job.end_ns
            await store.save_backfill_page(conn, job.key, next_request, rows, covered_ns)
        # Only after the commit: a rolled-back page created no partition, used no sequence.
        if job.kind == "trades":
            self._partitions |= created
            self._next_sequence += rows
        return rows, covered_ns
