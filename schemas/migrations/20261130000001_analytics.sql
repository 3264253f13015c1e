-- The host's analytics (docs/hosts.md): figures every process collects in memory and adds
-- here in batches. Rows older than LINKDROP_ANALYTICS_RETENTION_DAYS are deleted.

-- One row per room and second: viewers connected (summed over gateway nodes), joins and
-- leaves in that second.
CREATE TABLE room_seconds (
    room_id  text NOT NULL,
    at_s     bigint NOT NULL,
    viewers  bigint NOT NULL,
    joins    bigint NOT NULL,
    leaves   bigint NOT NULL,
    PRIMARY KEY (room_id, at_s)
);

-- Each viewer of a room once, when first seen: new against returning viewers.
CREATE TABLE room_viewers (
    room_id       text NOT NULL,
    user_id       text NOT NULL,
    first_seen_ms bigint NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_viewers_by_user ON room_viewers (user_id, first_seen_ms);

-- Repeat buyers: a shopper's earlier orders with the same merchant.
CREATE INDEX orders_by_buyer ON orders (merchant_id, user_id);

-- Per drop: what no record holds. Orders, payments and expiries are counted from orders.
CREATE TABLE drop_figures (
    drop_id           text PRIMARY KEY,
    launched_at_ms    bigint,
    viewers_at_launch bigint,
    countdown_reached bigint NOT NULL DEFAULT 0,
    taps              bigint NOT NULL DEFAULT 0,
    updated_at_ms     bigint NOT NULL
);
