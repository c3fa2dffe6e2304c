-- Indexes no query reads, each an entry that every send wrote. Sessions are read by id, by
-- phone and time (the newest session holding a provider's code) and by time (health, retention);
-- OTP events by time and by phone and time (admin logs), verified ones by time (health).
DROP INDEX IF EXISTS sms_otp_sessions_user_id;
DROP INDEX IF EXISTS sms_otp_sessions_status_expires;
DROP INDEX IF EXISTS otp_logs_user_type_created;
