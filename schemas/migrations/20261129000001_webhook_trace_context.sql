-- The trace context of the order or drop a merchant event reports (a W3C traceparent),
-- so that its delivery attempts join that trace. NULL when it was not traced.
ALTER TABLE webhook_messages ADD COLUMN traceparent TEXT;
