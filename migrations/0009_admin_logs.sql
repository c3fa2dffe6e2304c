-- The admin log view (GET /v1/admin/logs) reads both logs newest first, often for one number:
-- otp_logs had no index on created_at, and neither log one on the number.
CREATE INDEX IF NOT EXISTS otp_logs_created ON otp_logs (created_at);
CREATE INDEX IF NOT EXISTS otp_logs_phone_created ON otp_logs (phone, created_at);
CREATE INDEX IF NOT EXISTS sms_messages_log_to_created ON sms_messages_log ("to", created_at);
