-- The live pre-trade checks in a backtest (event engine): the margin multiplier
-- and risk limits a run was given, and the orders those checks refused.
-- Idempotent: safe to run again.

ALTER TABLE runs ADD COLUMN IF NOT EXISTS margin_multiplier NUMERIC NOT NULL DEFAULT 1;
-- The limits the request pinned by name (decimals as strings); null: none set.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS limits JSONB;

-- Orders of a succeeded run that the pre-trade checks refused, in placing order.
CREATE TABLE IF NOT EXISTS rejections (
    run_id     UUID        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq        INTEGER     NOT NULL,
    ts         TIMESTAMPTZ NOT NULL,
    symbol     TEXT        NOT NULL,
    side       TEXT        NOT NULL,
    qty        NUMERIC     NOT NULL,
    order_type TEXT        NOT NULL,
    reason     TEXT        NOT NULL,
    message    TEXT        NOT NULL,
    PRIMARY KEY (run_id, seq)
);
