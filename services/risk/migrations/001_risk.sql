-- Risk's own state: per-account limit overrides, trading states (account id '*'
-- is the global kill switch), their change history, and positions learnt from
-- execution's fills. Forward-only; every statement is idempotent.

CREATE TABLE IF NOT EXISTS account_limits (
    account_id            TEXT PRIMARY KEY,
    -- NULL: inherit the service default.
    max_order_qty         NUMERIC,
    max_order_notional    NUMERIC,
    max_position_qty      NUMERIC,
    max_position_notional NUMERIC,
    max_gross_exposure    NUMERIC,
    max_open_orders       INTEGER,
    price_collar_pct      NUMERIC,
    max_quote_age_s       NUMERIC,
    orders_per_second     NUMERIC,
    order_burst           INTEGER,
    allow_notional_orders BOOLEAN,
    allow_short           BOOLEAN,
    updated_by            TEXT        NOT NULL DEFAULT '',
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS trading_states (
    account_id TEXT PRIMARY KEY,
    state      TEXT        NOT NULL CHECK (state IN ('active', 'reducing', 'halted')),
    reason     TEXT        NOT NULL DEFAULT '',
    updated_by TEXT        NOT NULL DEFAULT '',
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS trading_state_changes (
    id             BIGSERIAL PRIMARY KEY,
    account_id     TEXT        NOT NULL,
    previous_state TEXT        NOT NULL,
    state          TEXT        NOT NULL,
    reason         TEXT        NOT NULL,
    changed_by     TEXT        NOT NULL,
    changed_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS positions (
    account_id      TEXT        NOT NULL,
    symbol          TEXT        NOT NULL,
    qty             NUMERIC     NOT NULL,
    last_fill_price NUMERIC     NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, symbol)
);

CREATE INDEX IF NOT EXISTS account_limits_updated_at ON account_limits (updated_at);
CREATE INDEX IF NOT EXISTS trading_states_updated_at ON trading_states (updated_at);
