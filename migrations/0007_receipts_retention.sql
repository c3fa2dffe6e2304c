-- Messages beyond OTP and delivery receipts.
--
-- * `sms_messages_log.type` names what was sent as the plans do: `otp`, `transactional` (texts and
--   templates sent on their own) or `promo`. Rows written as `text` / `template` become
--   `transactional`.
-- * `parts`: the SMS parts the text took (GSM-7 / UCS-2 segments); NULL for provider templates.
-- * Delivery receipts: `sms_receipts` keeps the newest receipt per (provider, reference), so a
--   receipt that arrives before its attempt row (group commit) is matched when the row is
--   written. The attempt row shows the delivery (`delivery_status`, `delivery_error`,
--   `delivered_at`).

ALTER TABLE sms_messages_log DROP CONSTRAINT IF EXISTS sms_messages_log_type_check;
UPDATE sms_messages_log SET type = 'transactional' WHERE type IN ('text', 'template');
ALTER TABLE sms_messages_log ADD CONSTRAINT sms_messages_log_type_check
    CHECK (type IN ('otp', 'transactional', 'promo'));

ALTER TABLE sms_messages_log ADD COLUMN IF NOT EXISTS parts integer;
ALTER TABLE sms_messages_log ADD COLUMN IF NOT EXISTS delivery_status text
    CHECK (delivery_status IN ('delivered', 'undelivered', 'failed'));
ALTER TABLE sms_messages_log ADD COLUMN IF NOT EXISTS delivery_error text;
ALTER TABLE sms_messages_log ADD COLUMN IF NOT EXISTS delivered_at timestamptz;
CREATE INDEX IF NOT EXISTS sms_messages_log_provider_ref ON sms_messages_log (provider_name, provider_ref)
    WHERE provider_ref IS NOT NULL;

CREATE TABLE IF NOT EXISTS sms_receipts (
    provider    text NOT NULL,
    reference   text NOT NULL,
    status      text NOT NULL CHECK (status IN ('delivered', 'undelivered', 'failed')),
    error_code  text,
    event_at    timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (provider, reference)
);
CREATE INDEX IF NOT EXISTS sms_receipts_received ON sms_receipts (received_at);
ALTER TABLE sms_receipts ENABLE ROW LEVEL SECURITY;
