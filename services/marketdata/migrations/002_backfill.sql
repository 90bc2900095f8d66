-- Provider backfills (`cift marketdata backfill`): where each job stopped, so a run
-- that is interrupted resumes at the page after the last one written. Each page's
-- rows and this row's update commit in one transaction. Idempotent: safe to run again.
CREATE TABLE IF NOT EXISTS backfill_jobs (
    provider     TEXT    NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('bars', 'trades')),
    symbol       TEXT    NOT NULL,
    timeframe    TEXT    NOT NULL,  -- '' for trades
    start_ns     BIGINT  NOT NULL,
    end_ns       BIGINT  NOT NULL,
    next_request TEXT,              -- the next page's request as JSON; NULL once done
    done         BOOLEAN NOT NULL DEFAULT false,
    pages        INTEGER NOT NULL DEFAULT 0,
    rows_written BIGINT  NOT NULL DEFAULT 0,
    covered_ns   BIGINT  NOT NULL,  -- time of the last row written (progress)
    PRIMARY KEY (provider, kind, symbol, timeframe, start_ns, end_ns)
);
