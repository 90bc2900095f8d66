-- SubmitOrder writes the reservation, the order, its event and the outbox row in
-- one statement (services/execution/store.py: submit_order). The order event's
-- per-account sequence is handed out by the reservation UPDATE inside that same
-- statement, so the event is serialized without it and this appends protobuf
-- field 7 (OrderEvent.sequence, a varint) in SQL; a protobuf parser merges
-- fields in any order, so the bytes decode exactly as if serialized whole.
CREATE OR REPLACE FUNCTION pb_varint(value BIGINT) RETURNS BYTEA
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    encoded BYTEA := '\x'::bytea;
    rest    BIGINT := value;
BEGIN
    IF rest < 0 THEN
        RAISE EXCEPTION 'pb_varint encodes non-negative values only, not %', rest;
    END IF;
    LOOP
        IF rest < 128 THEN
            RETURN encoded || set_byte('\x00'::bytea, 0, rest::int);
        END IF;
        encoded := encoded || set_byte('\x00'::bytea, 0, ((rest & 127) | 128)::int);
        rest := rest >> 7;
    END LOOP;
END
$$;

-- Trailing stops' high/low-water marks are saved as they move (batched by the
-- broker), so this index serves the reload of open orders after a restart.
CREATE INDEX IF NOT EXISTS orders_open_all ON orders (created_at, order_id)
    WHERE status IN ('new', 'accepted', 'partially_filled');
