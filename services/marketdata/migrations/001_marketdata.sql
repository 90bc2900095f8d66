-- Market data: ticks (partitioned by time), bars (open and closed), and the ingest's
-- resume state. Idempotent: safe to run again.

-- Every quote and trade the feed published, in ranges of ts_ns (one partition per
-- day by default, created by the ingest before it writes a day's first tick).
CREATE TABLE IF NOT EXISTS ticks (
    sequence  BIGINT           NOT NULL,
    ts_ns     BIGINT           NOT NULL,
    symbol    TEXT             NOT NULL,
    kind      SMALLINT         NOT NULL CHECK (kind IN (1, 2)),  -- 1 quote, 2 trade
    bid       DOUBLE PRECISION,
    ask       DOUBLE PRECISION,
    bid_size  DOUBLE PRECISION,
    ask_size  DOUBLE PRECISION,
    price     DOUBLE PRECISION,
    size      DOUBLE PRECISION
) PARTITION BY RANGE (ts_ns);

CREATE INDEX IF NOT EXISTS ticks_symbol_kind_ts ON ticks (symbol, kind, ts_ns, sequence);

-- Bars of every timeframe. The open bar of each (symbol, timeframe) is stored too
-- (closed = false), with the sum of price*size, so the ingest resumes it exactly.
CREATE TABLE IF NOT EXISTS bars (
    symbol      TEXT             NOT NULL,
    timeframe   TEXT             NOT NULL,
    start_ns    BIGINT           NOT NULL,
    open        DOUBLE PRECISION NOT NULL,
    high        DOUBLE PRECISION NOT NULL,
    low         DOUBLE PRECISION NOT NULL,
    close       DOUBLE PRECISION NOT NULL,
    volume      DOUBLE PRECISION NOT NULL,
    notional    DOUBLE PRECISION NOT NULL,
    trade_count BIGINT           NOT NULL,
    closed      BOOLEAN          NOT NULL,
    PRIMARY KEY (symbol, timeframe, start_ns)
);

CREATE INDEX IF NOT EXISTS bars_open ON bars (symbol, timeframe) WHERE NOT closed;

-- Each symbol's bar clock (latest tick time seen), saved with the bars it closed.
CREATE TABLE IF NOT EXISTS bar_clocks (
    symbol   TEXT   PRIMARY KEY,
    clock_ns BIGINT NOT NULL
);

-- Highest tick sequence applied per Kafka partition: sequences only grow within a
-- partition, so a replayed tick at or below it was already written.
CREATE TABLE IF NOT EXISTS ingest_progress (
    topic     TEXT    NOT NULL,
    partition INTEGER NOT NULL,
    sequence  BIGINT  NOT NULL,
    PRIMARY KEY (topic, partition)
);
