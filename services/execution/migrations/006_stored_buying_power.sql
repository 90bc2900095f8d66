-- Buying power before reservations, as the ledger computed it (cift/trading/ledger.py:
-- buying_power) each time cash or a position's cost changed. The reservation compares
-- against this figure and never computes it, so the formula lives in Python only.
-- Accounts opened before this column get it from the service at start (NULL until then,
-- which reserves nothing: a NULL comparison is never true).
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS buying_power NUMERIC;
-- Order events are now serialized whole in Python, sequence included.
DROP FUNCTION IF EXISTS pb_varint(BIGINT);
