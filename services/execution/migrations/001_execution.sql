-- Accounts, orders, fills, positions and the activity trail of the paper broker.
-- Money, prices and quantities are NUMERIC (exact); never float.

CREATE TABLE IF NOT EXISTS accounts (
    account_id        TEXT PRIMARY KEY,
    cash              NUMERIC     NOT NULL,
    -- Sum of signed and of absolute position cost bases: buying power at cost
    -- (services/execution/ledger.py) is computed from these in one row.
    net_cost          NUMERIC     NOT NULL DEFAULT 0,
    gross_cost        NUMERIC     NOT NULL DEFAULT 0,
    reserved          NUMERIC     NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    realized_pnl      NUMERIC     NOT NULL DEFAULT 0,
    commissions       NUMERIC     NOT NULL DEFAULT 0,
    margin_multiplier NUMERIC     NOT NULL,
    last_equity       NUMERIC     NOT NULL,
    -- Last OrderEvent.sequence handed out for this account (gapless per account).
    event_seq         BIGINT      NOT NULL DEFAULT 0,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS orders (
    order_id        TEXT PRIMARY KEY,
    account_id      TEXT        NOT NULL REFERENCES accounts (account_id),
    client_order_id TEXT        NOT NULL,
    symbol          TEXT        NOT NULL,
    side            TEXT        NOT NULL,
    order_type      TEXT        NOT NULL,
    time_in_force   TEXT        NOT NULL,
    qty             NUMERIC,
    notional        NUMERIC,
    limit_price     NUMERIC,
    stop_price      NUMERIC,
    trail_price     NUMERIC,
    trail_percent   NUMERIC,
    status          TEXT        NOT NULL,
    filled_qty      NUMERIC     NOT NULL DEFAULT 0,
    filled_notional NUMERIC     NOT NULL DEFAULT 0,
    fill_count      INTEGER     NOT NULL DEFAULT 0,
    commission      NUMERIC     NOT NULL DEFAULT 0,
    reserved        NUMERIC     NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    triggered       BOOLEAN     NOT NULL DEFAULT false,
    water_mark      NUMERIC,
    replaces        TEXT,
    replaced_by     TEXT,
    reason          TEXT        NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    filled_at       TIMESTAMPTZ,
    canceled_at     TIMESTAMPTZ,
    expired_at      TIMESTAMPTZ,
    replaced_at     TIMESTAMPTZ,
    UNIQUE (account_id, client_order_id)
);
CREATE INDEX IF NOT EXISTS orders_by_account ON orders (account_id, created_at DESC, order_id DESC);
CREATE INDEX IF NOT EXISTS orders_open ON orders (account_id, symbol, side)
    WHERE status IN ('new', 'accepted', 'partially_filled');

CREATE TABLE IF NOT EXISTS positions (
    account_id   TEXT        NOT NULL REFERENCES accounts (account_id),
    symbol       TEXT        NOT NULL,
    qty          NUMERIC     NOT NULL,
    cost_basis   NUMERIC     NOT NULL,
    realized_pnl NUMERIC     NOT NULL DEFAULT 0,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, symbol)
);

CREATE TABLE IF NOT EXISTS fills (
    fill_id     TEXT PRIMARY KEY,
    order_id    TEXT        NOT NULL REFERENCES orders (order_id),
    account_id  TEXT        NOT NULL,
    symbol      TEXT        NOT NULL,
    side        TEXT        NOT NULL,
    qty         NUMERIC     NOT NULL CHECK (qty > 0),
    price       NUMERIC     NOT NULL CHECK (price > 0),
    commission  NUMERIC     NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL
);

-- The audit trail a trader reads: every fill and cash movement.
CREATE TABLE IF NOT EXISTS activities (
    activity_id   TEXT PRIMARY KEY,
    account_id    TEXT        NOT NULL,
    activity_type TEXT        NOT NULL,
    occurred_at   TIMESTAMPTZ NOT NULL,
    net_amount    NUMERIC     NOT NULL,
    symbol        TEXT        NOT NULL DEFAULT '',
    side          TEXT        NOT NULL DEFAULT '',
    qty           NUMERIC,
    price         NUMERIC,
    order_id      TEXT        NOT NULL DEFAULT '',
    description   TEXT        NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS activities_by_account ON activities (account_id, occurred_at DESC, activity_id DESC);

-- Order events kept for StreamOrderUpdates resumption (the outbox forgets once relayed).
CREATE TABLE IF NOT EXISTS order_events (
    account_id  TEXT        NOT NULL,
    sequence    BIGINT      NOT NULL,
    payload     BYTEA       NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, sequence)
);

CREATE TABLE IF NOT EXISTS equity_snapshots (
    account_id TEXT        NOT NULL,
    taken_at   TIMESTAMPTZ NOT NULL,
    equity     NUMERIC     NOT NULL,
    PRIMARY KEY (account_id, taken_at)
);

-- Last tick sequence applied per symbol, moved in the fill transaction, so ticks
-- replayed after a restart cannot fill the same resting order again.
CREATE TABLE IF NOT EXISTS tick_marks (
    symbol   TEXT PRIMARY KEY,
    sequence BIGINT NOT NULL
);
