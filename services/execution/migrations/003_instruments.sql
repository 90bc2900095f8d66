-- The trading rules of every symbol an order was accepted for, as market data
-- published them then. Reloading the book after a restart reads them from here,
-- so a restart needs neither the market data service nor a caller's credential
-- (background work has none to forward).
CREATE TABLE IF NOT EXISTS instruments (
    symbol        TEXT PRIMARY KEY,
    tick_size     NUMERIC     NOT NULL CHECK (tick_size > 0),
    qty_increment NUMERIC     NOT NULL CHECK (qty_increment > 0),
    fractionable  BOOLEAN     NOT NULL,
    tradable      BOOLEAN     NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
