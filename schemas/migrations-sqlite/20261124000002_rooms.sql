-- Live-stream rooms, each owned by a merchant.
CREATE TABLE rooms (
    id            TEXT PRIMARY KEY,
    title         TEXT NOT NULL,
    merchant_id   TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
