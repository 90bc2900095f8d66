"""Settings of the market data process: which feed runs, how fast, and stream buffers."""

from __future__ import annotations

from dataclasses import dataclass

from cift.runtime.config import CommonConfig, secret_setting, setting

FEED_KINDS = ("simulator", "replay", "alpaca", "massive", "none")
ALPACA_DATA_FEEDS = ("iex", "sip")
CALENDAR_MODES = ("always_open", "nyse")


@dataclass(frozen=True)
class MarketDataConfig(CommonConfig):
    marketdata_feed: str = setting(
        "simulator",
        "Feed this process runs: simulator, replay (a file), alpaca, massive or none (ingest only).",
    )
    marketdata_symbols: tuple[str, ...] = setting(
        (),
        "Symbols the alpaca or massive feed subscribes to, comma-separated (default: the universe).",
    )
    alpaca_key_id: str = secret_setting("Alpaca API key id (live feed and backfill; never logged).")
    alpaca_secret_key: str = secret_setting("Alpaca API secret key (never logged).")
    alpaca_data_feed: str = setting(
        "iex", "Alpaca data feed: iex (free plan, one exchange) or sip (every US exchange)."
    )
    alpaca_stream_url: str = setting(
        "wss://stream.data.alpaca.markets/v2/{feed}",
        "Alpaca stock stream; {feed} is replaced by CIFT_ALPACA_DATA_FEED.",
    )
    alpaca_data_url: str = setting(
        "https://data.alpaca.markets", "Alpaca market data REST base (historical bars and trades)."
    )
    massive_api_key: str = secret_setting("Massive (Polygon) API key (never logged).")
    massive_stream_url: str = setting(
        "wss://socket.massive.com/stocks", "Massive real-time stocks WebSocket cluster."
    )
    massive_rest_url: str = setting(
        "https://api.massive.com", "Massive REST base (historical aggregates and trades)."
    )
    marketdata_feed_backoff_s: float = setting(
        0.5, "First reconnect delay of a provider feed; it doubles per failure, with jitter."
    )
    marketdata_feed_backoff_max_s: float = setting(
        30.0, "Longest reconnect delay of a provider feed (also after auth or limit errors)."
    )
    marketdata_feed_buffer: int = setting(
        1_000_000,
        "Most provider ticks held between the socket and Kafka; beyond it new ticks are dropped and counted.",
    )
    marketdata_seed: int = setting(42, "Simulator seed; the same seed replays the same market.")
    marketdata_rate: float = setting(
        2.0, "Simulator ticks per second per symbol (quotes and trades together)."
    )
    marketdata_trade_probability: float = setting(
        0.25, "Share of simulated events that are trades rather than quote updates."
    )
    marketdata_simulator_history_s: float = setting(
        0.0,
        "Seconds of simulated past the simulator writes to an empty store before it starts (ticks and bars, never published: the live market starts now), so charts, indicators and backtests have bars from the first minute; none onto stored ticks, where it would overlap them (the simulator goes on from their last prices instead); 0: none (cift up: 3600).",
    )
    marketdata_universe_file: str = setting(
        "", "CSV file of instruments replacing the built-in universe (columns: see instruments.py)."
    )
    marketdata_replay_path: str = setting(
        "", "Parquet or CSV file of ticks or bars for the replay feed."
    )
    marketdata_replay_symbol: str = setting(
        "", "Symbol of a single-symbol replay file that has no symbol column (e.g. GOOG.csv)."
    )
    marketdata_replay_speed: float = setting(
        60.0, "Replay speed: 1 is real time, 60 replays a minute per second, 0 as fast as possible."
    )
    marketdata_replay_loop: bool = setting(False, "Start the replay file over when it ends.")
    marketdata_calendar: str = setting(
        "always_open", "Market calendar: always_open (simulator default) or nyse."
    )
    marketdata_clock_start: str = setting(
        "",
        "Instant the market clock reads when the process starts (ISO 8601 with a UTC offset), running on at wall speed, for paper sessions and tests; empty: the wall clock.",
    )
    marketdata_extra_holidays: str = setting(
        "", "Extra full-day closures for the nyse calendar, comma-separated YYYY-MM-DD."
    )
    marketdata_removed_holidays: str = setting(
        "", "Dates to treat as trading days despite the nyse rules, comma-separated YYYY-MM-DD."
    )
    marketdata_feed_interval_s: float = setting(
        0.01, "How often the feed publishes what became due (a batch per interval)."
    )
    marketdata_ingest_batch: int = setting(
        20_000, "Most ticks the ingest consumer writes in one transaction."
    )
    marketdata_tick_partition_days: int = setting(
        1, "Days per partition of the ticks table (raise it for long historical loads)."
    )
    marketdata_stream_ring: int = setting(
        65536,
        "Items each stream kind keeps for slow subscribers and resumes (the bound per subscriber).",
    )
    marketdata_stream_batch: int = setting(
        200, "Most quotes, trades or bars in one stream message."
    )
    marketdata_stream_heartbeat_s: float = setting(
        5.0, "Seconds without data after which a stream sends an empty heartbeat message."
    )
    marketdata_ticks_topic: str = setting(
        "marketdata.ticks.v1",
        "Topic the feed publishes ticks to and the ingest reads (isolated runs only).",
    )
    marketdata_bars_topic: str = setting(
        "marketdata.bars.v1", "Topic closed bars are published to (isolated runs only)."
    )
    marketdata_ingest_group: str = setting(
        "marketdata-ingest",
        "Consumer group of the ingest (a new group re-reads the topic from the start).",
    )
    marketdata_max_streams: int = setting(1000, "Most concurrent subscribers per stream kind.")
