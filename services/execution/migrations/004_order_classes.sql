-- Order classes and session terms (cift/trading/order_classes.py, auction.py): a leg
-- names its parent, so a restart can rebuild each bracket, OCO and OTO group; held
-- legs are open orders that the fill engine keeps out of the book until released.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS order_class TEXT NOT NULL DEFAULT 'simple';
ALTER TABLE orders ADD COLUMN IF NOT EXISTS parent_id TEXT;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS expire_at TIMESTAMPTZ;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS extended_hours BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS orders_by_parent ON orders (parent_id) WHERE parent_id IS NOT NULL;
