-- Merchant webhooks, second part.
-- Secrets are stored sealed (LINKDROP_WEBHOOK_SECRET_KEY, see webhook_secrets.rs). During a
-- rotation the previous secret keeps signing next to the new one until
-- previous_secret_until_ms. An endpoint failing without a success since failing_since_ms
-- for the configured period is disabled, with the reason.
ALTER TABLE webhook_endpoints
    ADD COLUMN previous_secret          text,
    ADD COLUMN previous_secret_until_ms bigint,
    ADD COLUMN failing_since_ms         bigint,
    ADD COLUMN disabled_reason          text;

-- Attempts older than the retention are deleted by the dispatcher.
CREATE INDEX webhook_attempts_by_time ON webhook_attempts (attempted_at_ms);
-- Dead letters and pending deliveries of an endpoint, for the merchant.
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, state);
