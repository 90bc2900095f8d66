-- Backtests: each run with what was asked, where it is, and its result (stats,
-- closed trades, equity curve). Idempotent: safe to run again.

CREATE TABLE IF NOT EXISTS runs (
    id           UUID             PRIMARY KEY,
    user_id      TEXT             NOT NULL,
    status       TEXT             NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
    strategy     TEXT             NOT NULL,
    params       JSONB            NOT NULL,
    symbols      TEXT[]           NOT NULL,
    timeframe    TEXT             NOT NULL,
    start_at     TIMESTAMPTZ      NOT NULL,
    end_at       TIMESTAMPTZ      NOT NULL,
    cash         NUMERIC          NOT NULL,
    commission   NUMERIC          NOT NULL,
    engine       TEXT             NOT NULL,
    bar_count    BIGINT           NOT NULL,
    progress     DOUBLE PRECISION NOT NULL DEFAULT 0,
    stage        TEXT             NOT NULL DEFAULT '',
    error        TEXT             NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ      NOT NULL DEFAULT now(),
    started_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ,
    -- Written by the process computing the run while it lives; an unfinished run
    -- whose heartbeat stops was orphaned by a process that died.
    heartbeat_at TIMESTAMPTZ      NOT NULL DEFAULT now(),
    -- Set with status 'succeeded': the library's statistics by name.
    stats        JSONB
);

-- A user's runs, newest first (ListBacktests pages through it).
CREATE INDEX IF NOT EXISTS runs_by_user ON runs (user_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS runs_unfinished ON runs (heartbeat_at)
    WHERE status IN ('queued', 'running');

-- Closed trades of a succeeded run, in entry order.
CREATE TABLE IF NOT EXISTS trades (
    run_id          UUID             NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq             INTEGER          NOT NULL,
    symbol          TEXT             NOT NULL,
    side            TEXT             NOT NULL CHECK (side IN ('long', 'short')),
    qty             NUMERIC          NOT NULL,
    entry_time      TIMESTAMPTZ      NOT NULL,
    exit_time       TIMESTAMPTZ      NOT NULL,
    entry_price     NUMERIC          NOT NULL,
    exit_price      NUMERIC          NOT NULL,
    pnl             NUMERIC          NOT NULL,
    return_pct      DOUBLE PRECISION NOT NULL,
    commission      NUMERIC          NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- The equity curve of a succeeded run, oldest first.
CREATE TABLE IF NOT EXISTS equity (
    run_id       UUID             NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq          INTEGER          NOT NULL,
    ts           TIMESTAMPTZ      NOT NULL,
    equity       NUMERIC          NOT NULL,
    drawdown_pct DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, seq)
);
