-- The embedded backend's system of record (SQLite), table by table as the roles move onto
-- it; each table mirrors its PostgreSQL twin in schemas/migrations. Times are milliseconds
-- since the Unix epoch.

-- API keys of hosts and merchants: only a SHA-256 of the key is kept.
CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    key_hash      TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('host', 'merchant')),
    merchant_id   TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
);
