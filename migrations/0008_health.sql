-- Provider health reads conversion from rows the send and verify paths already write: every
-- instance runs one aggregate over the recent sessions, their accepted attempts and their
-- verify events (see src/health/DESIGN.md). These indexes keep that aggregate, and the lookup
-- of one session's SMS that a resend and a verify make, to the recent rows only.

CREATE INDEX IF NOT EXISTS sms_otp_sessions_created ON sms_otp_sessions (created_at);
CREATE INDEX IF NOT EXISTS sms_messages_log_session ON sms_messages_log (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS otp_logs_verified_created ON otp_logs (created_at) WHERE type = 'verify' AND status = 'verified';
