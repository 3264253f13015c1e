-- A merchant's rooms, newest first: the index PostgreSQL has had since its first migration
-- (rooms_by_merchant), missing here until the schema test compared the two trees.
CREATE INDEX rooms_by_merchant ON rooms (merchant_id, id);
