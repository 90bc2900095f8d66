-- A fill that explains itself (cift/trading/fill_events.py FillExplanation): the tick
-- whose price it took (its sequence in marketdata.ticks.v1, venue time, quote and
-- trade) and the fill-model settings that made its price, size and commission.
-- NULL price_source: a fill recorded before fills carried explanations.
ALTER TABLE fills ADD COLUMN IF NOT EXISTS price_source TEXT;
ALTER TABLE fills ADD COLUMN IF NOT EXISTS tick_sequence BIGINT;
ALTER TABLE fills ADD COLUMN IF NOT EXISTS tick_ts_ns BIGINT;
ALTER TABLE fills ADD COLUMN IF NOT EXISTS market_price NUMERIC;
ALTER TABLE fills ADD COLUMN IF NOT EXISTS bid NUMERIC;
ALTER TABLE fills ADD COLUMN IF NOT EXISTS ask NUMERIC;
ALTER TABLE fills ADD COLUMN IF NOT EXISTS bid_size NUMERIC;
ALTER TABLE fills ADD COLUMN IF NOT EXISTS ask_size NUMERIC;
ALTER TABLE fills ADD COLUMN IF NOT EXISTS trade_price NUMERIC;
ALTER TABLE fills ADD COLUMN IF NOT EXISTS trade_size NUMERIC;
ALTER TABLE fills ADD COLUMN IF NOT EXISTS available_qty NUMERIC;
ALTER TABLE fills ADD COLUMN IF NOT EXISTS limit_price NUMERIC;
ALTER TABLE fills ADD COLUMN IF NOT EXISTS displayed_size_only BOOLEAN;
ALTER TABLE fills ADD COLUMN IF NOT EXISTS slippage_bps NUMERIC;
ALTER TABLE fills ADD COLUMN IF NOT EXISTS commission_per_share NUMERIC;
ALTER TABLE fills ADD COLUMN IF NOT EXISTS commission_bps NUMERIC;
-- GetOrder reads an order's fills (and its legs') by order id.
CREATE INDEX IF NOT EXISTS fills_by_order ON fills (order_id);
