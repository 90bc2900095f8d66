"""The replay feed: a shipped real data set (GOOG daily bars) through the whole pipeline."""

from __future__ import annotations

import polars as pl
import pytest

from cift.marketdata.v1 import marketdata_pb2 as md
from cift.runtime.timestamps import timestamp
from services.marketdata.replay import sample_data_path
from tests.integration.marketdata.marketdata_helpers import METADATA, Scenario, eventually

pytestmark = pytest.mark.integration
DAY = 86_400 * 1_000_000_000


@pytest.mark.skipif(
    sample_data_path() is None, reason="the backtesting package (test extra) ships GOOG.csv"
)
async def test_replayed_goog_history_comes_back_as_the_same_daily_bars(scenario: Scenario) -> None:
    path = sample_data_path()
    assert path is not None
    source = pl.read_csv(path, try_parse_dates=True).head(400)
    first_day = source[0, 0]
    async with scenario.running(
        marketdata_feed="replay",
        marketdata_replay_path=str(path),
        marketdata_replay_symbol="GOOG",
        marketdata_replay_speed=0.0,
        # Eight and a half years of history: one partition per ten years, not per day.
        marketdata_tick_partition_days=3650,
    ) as service:
        start = timestamp(int(pl.Series([first_day]).cast(pl.Datetime("ns")).cast(pl.Int64)[0]))
        end = timestamp(start.ToNanoseconds() + 600 * DAY)

        async def daily_bars() -> list[md.Bar] | None:
            response = await service.stub.GetBars(
                md.GetBarsRequest(
                    symbol="GOOG", timeframe="1Day", start=start, end=end, page_size=1000
                ),
                metadata=METADATA,
            )
            return list(response.bars) if len(response.bars) >= source.height else None

        bars = await eventually(daily_bars, timeout_s=60.0)
    for bar, row in zip(bars, source.iter_rows(named=True), strict=False):
        assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (
            row["Open"],
            row["High"],
            row["Low"],
            row["Close"],
            row["Volume"],
        )
