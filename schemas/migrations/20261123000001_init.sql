-- The system of record of linkdrop. Times are milliseconds since the Unix epoch (bigint),
-- the unit of every *_ms field of the API, so that records and API agree without
-- conversions and tests can drive time explicitly.

-- API keys of hosts and merchants. Only a SHA-256 of the key is kept; the key itself is
-- shown once, when it is created.
CREATE TABLE api_keys (
    id            text PRIMARY KEY,
    key_hash      text NOT NULL UNIQUE,
    role          text NOT NULL CHECK (role IN ('host', 'merchant')),
    merchant_id   text NOT NULL,
    created_at_ms bigint NOT NULL,
    revoked_at_ms bigint
);

CREATE TABLE rooms (
    id            text PRIMARY KEY,
    title         text NOT NULL,
    merchant_id   text NOT NULL,
    created_at_ms bigint NOT NULL
);
CREATE INDEX rooms_by_merchant ON rooms (merchant_id, id);

-- A drop's configuration and the milestones of its life. Live figures (stock left,
-- per-user counts) are in Redis; these columns are what survives Redis.
CREATE TABLE drops (
    id             text PRIMARY KEY,
    room_id        text NOT NULL REFERENCES rooms (id),
    merchant_id    text NOT NULL,
    sku            text NOT NULL,
    title          text NOT NULL,
    image_url      text NOT NULL,
    price_cents    bigint NOT NULL CHECK (price_cents >= 0),
    currency       text NOT NULL,
    stock          integer NOT NULL CHECK (stock > 0),
    max_per_user   integer NOT NULL CHECK (max_per_user > 0),
    policy         text NOT NULL CHECK (policy IN ('fcfs', 'lottery')),
    window_ms      integer,
    pay_within_s   integer NOT NULL,
    phase          text NOT NULL DEFAULT 'draft' CHECK (phase IN ('draft', 'launched', 'closed')),
    opens_at_ms    bigint,
    closed_at_ms   bigint,
    seed_hash      text,
    created_at_ms  bigint NOT NULL
);
CREATE INDEX drops_by_room ON drops (room_id, id);

-- Orders as settled from the orders topic. order_id is the primary key, so a redelivered
-- message inserts nothing (exactly-once effect).
CREATE TABLE orders (
    order_id        text PRIMARY KEY,
    drop_id         text NOT NULL REFERENCES drops (id),
    merchant_id     text NOT NULL,
    user_id         text NOT NULL,
    qty             integer NOT NULL CHECK (qty > 0),
    status          text NOT NULL
                    CHECK (status IN ('entered', 'lost', 'reserved', 'paid', 'expired', 'cancelled')),
    idempotency_key text NOT NULL,
    admitted_at_ms  bigint NOT NULL,
    pay_by_ms       bigint NOT NULL,
    paid_at_ms      bigint,
    payment_ref     text,
    settled_at_ms   bigint NOT NULL
);
CREATE INDEX orders_by_merchant ON orders (merchant_id, order_id);
CREATE INDEX orders_by_drop ON orders (drop_id, status);

-- Webhook endpoints of merchants. The signing secret must be recoverable to sign, so it
-- is stored, not hashed.
CREATE TABLE webhook_endpoints (
    id            text PRIMARY KEY,
    merchant_id   text NOT NULL,
    url           text NOT NULL,
    events        text[] NOT NULL,
    secret        text NOT NULL,
    disabled_at_ms bigint,
    created_at_ms bigint NOT NULL
);
CREATE INDEX webhook_endpoints_by_merchant ON webhook_endpoints (merchant_id);

-- The webhook outbox: one message per merchant event, written in the same transaction as
-- the record it reports, so an event exists if and only if its record does. The body is
-- kept as the exact text that is signed and sent.
CREATE TABLE webhook_messages (
    id            text PRIMARY KEY,
    merchant_id   text NOT NULL,
    event_type    text NOT NULL,
    body          text NOT NULL,
    created_at_ms bigint NOT NULL
);

-- One delivery per message and subscribed endpoint: what the dispatcher claims and retries.
CREATE TABLE webhook_deliveries (
    message_id         text NOT NULL REFERENCES webhook_messages (id),
    endpoint_id        text NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    state              text NOT NULL DEFAULT 'pending'
                       CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts           integer NOT NULL DEFAULT 0,
    next_attempt_at_ms bigint NOT NULL,
    locked_until_ms    bigint,
    PRIMARY KEY (message_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at_ms)
    WHERE state = 'pending';

CREATE TABLE webhook_attempts (
    id            bigserial PRIMARY KEY,
    message_id    text NOT NULL,
    endpoint_id   text NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    attempted_at_ms bigint NOT NULL,
    status_code   integer,
    error         text,
    duration_ms   integer NOT NULL,
    response_body text
);
CREATE INDEX webhook_attempts_by_endpoint ON webhook_attempts (endpoint_id, id DESC);
