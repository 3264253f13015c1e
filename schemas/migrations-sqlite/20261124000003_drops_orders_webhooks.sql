-- Drops, orders and merchant webhooks: the SQLite twins of the PostgreSQL tables of the
-- same names (schemas/migrations, all three files), with the same columns and checks.
-- Differences: `webhook_endpoints.events` is a JSON array of event types (SQLite has no
-- arrays); `webhook_attempts.id` is an INTEGER PRIMARY KEY (SQLite's serial).

CREATE TABLE drops (
    id             TEXT PRIMARY KEY,
    room_id        TEXT NOT NULL REFERENCES rooms (id),
    merchant_id    TEXT NOT NULL,
    sku            TEXT NOT NULL,
    title          TEXT NOT NULL,
    image_url      TEXT NOT NULL,
    price_cents    INTEGER NOT NULL CHECK (price_cents >= 0),
    currency       TEXT NOT NULL,
    stock          INTEGER NOT NULL CHECK (stock > 0),
    max_per_user   INTEGER NOT NULL CHECK (max_per_user > 0),
    policy         TEXT NOT NULL CHECK (policy IN ('fcfs', 'lottery')),
    window_ms      INTEGER,
    pay_within_s   INTEGER NOT NULL,
    phase          TEXT NOT NULL DEFAULT 'draft' CHECK (phase IN ('draft', 'launched', 'closed')),
    opens_at_ms    INTEGER,
    closed_at_ms   INTEGER,
    seed_hash      TEXT,
    created_at_ms  INTEGER NOT NULL,
    seed           TEXT,
    cutoff_rank    TEXT,
    draw_entries   INTEGER,
    draw_winners   INTEGER,
    drawn_at_ms    INTEGER
);
CREATE INDEX drops_by_room ON drops (room_id, id);

CREATE TABLE orders (
    order_id        TEXT PRIMARY KEY,
    drop_id         TEXT NOT NULL REFERENCES drops (id),
    merchant_id     TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    qty             INTEGER NOT NULL CHECK (qty > 0),
    status          TEXT NOT NULL
                    CHECK (status IN ('entered', 'lost', 'reserved', 'paid', 'expired', 'cancelled')),
    idempotency_key TEXT NOT NULL,
    admitted_at_ms  INTEGER NOT NULL,
    pay_by_ms       INTEGER,
    paid_at_ms      INTEGER,
    payment_ref     TEXT,
    settled_at_ms   INTEGER NOT NULL
);
CREATE INDEX orders_by_merchant ON orders (merchant_id, order_id);
CREATE INDEX orders_by_drop ON orders (drop_id, status);

CREATE TABLE webhook_endpoints (
    id                       TEXT PRIMARY KEY,
    merchant_id              TEXT NOT NULL,
    url                      TEXT NOT NULL,
    events                   TEXT NOT NULL, -- JSON array of event types
    secret                   TEXT NOT NULL,
    disabled_at_ms           INTEGER,
    created_at_ms            INTEGER NOT NULL,
    previous_secret          TEXT,
    previous_secret_until_ms INTEGER,
    failing_since_ms         INTEGER,
    disabled_reason          TEXT
);
CREATE INDEX webhook_endpoints_by_merchant ON webhook_endpoints (merchant_id);

CREATE TABLE webhook_messages (
    id            TEXT PRIMARY KEY,
    merchant_id   TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    body          TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);

CREATE TABLE webhook_deliveries (
    message_id         TEXT NOT NULL REFERENCES webhook_messages (id),
    endpoint_id        TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    state              TEXT NOT NULL DEFAULT 'pending'
                       CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms INTEGER NOT NULL,
    locked_until_ms    INTEGER,
    PRIMARY KEY (message_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at_ms)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, state);

CREATE TABLE webhook_attempts (
    id              INTEGER PRIMARY KEY,
    message_id      TEXT NOT NULL,
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    attempted_at_ms INTEGER NOT NULL,
    status_code     INTEGER,
    error           TEXT,
    duration_ms     INTEGER NOT NULL,
    response_body   TEXT
);
CREATE INDEX webhook_attempts_by_endpoint ON webhook_attempts (endpoint_id, id DESC);
CREATE INDEX webhook_attempts_by_time ON webhook_attempts (attempted_at_ms);
