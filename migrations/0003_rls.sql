-- Row-level security. These tables hold end users' phone numbers and OTP history; where the
-- database is also reached by other roles (Supabase's PostgREST as `authenticated`/`anon`, or any
-- reporting role granted SELECT), each of those roles may read only its own user's rows. The
-- gateway's own role owns the tables and so bypasses RLS (it is deliberately not FORCEd), and
-- keeps reading and writing every row.
--
-- Own rows are `user_id = <the request's subject>`:
--   * Supabase (`auth.uid()` exists and role `authenticated` exists): policy for `authenticated`
--     with `user_id = auth.uid()::text`.
--   * plain PostgreSQL: policy for every role with the JWT subject PostgREST sets
--     (`request.jwt.claim.sub`, or `sub` in `request.jwt.claims`). No subject: no rows.
--
-- sms_messages_log is partitioned: the parent's policy applies to reads through the parent. Its
-- partitions get RLS too, with no policy, so a role that was granted SELECT on them directly
-- (Supabase grants new tables to `anon`/`authenticated` by default) reads nothing from them.
-- Idempotent, and written without a schema name so it applies in whatever schema it runs in.

ALTER TABLE sms_otp_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE otp_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE sms_messages_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_contact_settings ENABLE ROW LEVEL SECURITY;

DO $$
DECLARE
    supabase boolean := to_regprocedure('auth.uid()') IS NOT NULL
                        AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated');
    grantee text;
    subject text;
    t text;
    part regclass;
BEGIN
    IF supabase THEN
        grantee := 'authenticated';
        subject := '(SELECT auth.uid()::text)';
    ELSE
        grantee := 'PUBLIC';
        subject := $s$(SELECT coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
                                       nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))$s$;
    END IF;
    FOREACH t IN ARRAY ARRAY['sms_otp_sessions', 'otp_logs', 'sms_messages_log', 'user_contact_settings'] LOOP
        EXECUTE format('DROP POLICY IF EXISTS smsgate_own_rows ON %I', t);
        EXECUTE format('CREATE POLICY smsgate_own_rows ON %I FOR SELECT TO %s USING (user_id = %s)', t, grantee, subject);
    END LOOP;
    FOR part IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'sms_messages_log'::regclass LOOP
        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', part);
    END LOOP;
END $$;

-- The gateway's own state (provider registry, rate counters keyed by phone numbers, cooldowns,
-- idempotency keys holding earlier answers) is readable by no one but the owner.
ALTER TABLE api_integrations ENABLE ROW LEVEL SECURITY;
ALTER TABLE rate_counters ENABLE ROW LEVEL SECURITY;
ALTER TABLE resend_cooldowns ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
