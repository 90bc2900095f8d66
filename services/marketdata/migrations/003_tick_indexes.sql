-- Cheaper indexes on ticks for the ingest (issue 21). The btree on
-- (symbol, kind, ts_ns, sequence) put one index entry per tick: about two thirds of
-- PostgreSQL's CPU per ingested tick. Each reader keeps an index of its own:
--  * GetTrades pages through one symbol's trades in (ts_ns, sequence) order, so trades
--    (a quarter of the ticks) keep an exact btree, read in order and stopped at the page.
--  * Quotes are read only as a whole range of one symbol (order-flow indicators), so a
--    BRIN over (symbol, ts_ns) with one heap page per range serves them: the ingest writes
--    each batch sorted by symbol, so a page holds one or two symbols and the index skips
--    every other symbol's pages. The ingest summarizes the pages it wrote after each
--    batch (`store.summarize_ticks`); a page not yet summarized is read, never missed.
-- Idempotent: safe to run again.
CREATE INDEX IF NOT EXISTS ticks_trades_symbol_ts ON ticks (symbol, ts_ns, sequence)
    WHERE kind = 2;
CREATE INDEX IF NOT EXISTS ticks_symbol_ts_brin ON ticks USING brin (symbol, ts_ns)
    WITH (pages_per_range = 1);
DROP INDEX IF EXISTS ticks_symbol_kind_ts;

-- Summarize the not yet summarized pages of the BRIN index of each named ticks
-- partition; returns the page ranges summarized. Best effort, one round trip: while
-- another process or autovacuum holds a partition's summarizing lock it waits at most
-- 50 ms and skips that partition (the next call covers its pages too).
CREATE OR REPLACE FUNCTION summarize_ticks(partitions TEXT[]) RETURNS BIGINT
LANGUAGE plpgsql SET lock_timeout = '50ms' AS $$
DECLARE
    total BIGINT := 0;
    index_oid OID;
BEGIN
    FOR index_oid IN
        SELECT i.indexrelid FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
        WHERE i.indrelid = ANY (SELECT to_regclass(p) FROM unnest(partitions) AS p)
          AND a.amname = 'brin'
    LOOP
        BEGIN
            total := total + brin_summarize_new_values(index_oid::regclass);
        EXCEPTION WHEN lock_not_available THEN
            NULL;
        END;
    END LOOP;
    RETURN total;
END $$;
