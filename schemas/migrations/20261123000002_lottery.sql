-- Lottery drops: the draw's published figures, and entries that have no payment deadline
-- until they are drawn.
ALTER TABLE orders ALTER COLUMN pay_by_ms DROP NOT NULL;

ALTER TABLE drops
    ADD COLUMN seed         text,    -- revealed after the draw; its hash is seed_hash
    ADD COLUMN cutoff_rank  text,    -- the largest winning rank (hex), null if none won
    ADD COLUMN draw_entries integer,
    ADD COLUMN draw_winners integer,
    ADD COLUMN drawn_at_ms  bigint;
