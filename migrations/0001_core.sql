-- The seed deployment's tables, kept by name so its readers keep working, extended with what
-- failover needs: several provider-held codes per session and one log row per provider attempt.

CREATE TABLE IF NOT EXISTS api_integrations (
    name        text PRIMARY KEY,
    kind        text NOT NULL,
    priority    integer NOT NULL DEFAULT 100,
    enabled     boolean NOT NULL DEFAULT true,
    config      jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Secrets are encrypted by the gateway before they reach this column.
    secret_ciphertext bytea,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS sms_otp_sessions (
    id                  uuid PRIMARY KEY,
    user_id             text,
    phone               text NOT NULL,
    purpose             text NOT NULL DEFAULT 'login',
    -- HMAC-SHA256 of the code under the server secret; the code itself is never stored.
    code_hmac           bytea NOT NULL,
    -- The provider that delivered the session's message, and its reference (seed columns).
    provider_name       text,
    provider_session_id text,
    -- Every provider-held code of the session: [{"provider": "...", "reference": "..."}].
    provider_refs       jsonb NOT NULL DEFAULT '[]'::jsonb,
    status              text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'verified', 'expired', 'failed')),
    attempts            integer NOT NULL DEFAULT 0,
    max_attempts        integer NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    expires_at          timestamptz NOT NULL,
    verified_at         timestamptz
);
CREATE INDEX IF NOT EXISTS sms_otp_sessions_user_id ON sms_otp_sessions (user_id);
CREATE INDEX IF NOT EXISTS sms_otp_sessions_status_expires ON sms_otp_sessions (status, expires_at);

CREATE TABLE IF NOT EXISTS otp_logs (
    id               bigserial PRIMARY KEY,
    user_id          text,
    phone            text,
    session_id       uuid,
    type             text NOT NULL CHECK (type IN ('autogen', 'local', 'verify', 'template')),
    status           text NOT NULL,
    provider         text,
    response_time_ms integer,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS otp_logs_user_type_created ON otp_logs (user_id, type, created_at);

-- One row per provider attempt, partitioned by month so retention is dropping a partition.
CREATE TABLE IF NOT EXISTS sms_messages_log (
    id               uuid NOT NULL,
    message_id       uuid NOT NULL,
    session_id       uuid,
    user_id          text,
    "to"             text NOT NULL,
    type             text NOT NULL CHECK (type IN ('otp', 'text', 'template')),
    provider_name    text NOT NULL,
    outcome          text NOT NULL,
    status_code      integer,
    error            text,
    provider_ref     text,
    response_time_ms integer NOT NULL,
    ambiguous        boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE TABLE IF NOT EXISTS sms_messages_log_default PARTITION OF sms_messages_log DEFAULT;
CREATE INDEX IF NOT EXISTS sms_messages_log_message ON sms_messages_log (message_id);
CREATE INDEX IF NOT EXISTS sms_messages_log_created ON sms_messages_log (created_at);

CREATE TABLE IF NOT EXISTS user_contact_settings (
    user_id            text PRIMARY KEY,
    phone              text,
    otp_enabled        boolean NOT NULL DEFAULT false,
    preferred_provider text,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- Creates the monthly partitions of sms_messages_log from this month to `months_ahead` ahead,
-- each with row-level security on.
CREATE OR REPLACE FUNCTION smsgate_ensure_log_partitions(months_ahead integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    first date := date_trunc('month', now())::date;
    m date;
    part text;
BEGIN
    FOR i IN 0..months_ahead LOOP
        m := (first + make_interval(months => i))::date;
        part := format('sms_messages_log_%s', to_char(m, 'YYYY_MM'));
        IF to_regclass(part) IS NULL THEN
            BEGIN
                EXECUTE format('CREATE TABLE %I PARTITION OF sms_messages_log FOR VALUES FROM (%L) TO (%L)',
                               part, m, (m + interval '1 month')::date);
                -- A role granted SELECT on a partition directly would bypass the parent's
                -- policies (0003): partitions get RLS with no policy of their own.
                EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', part);
            EXCEPTION WHEN check_violation THEN
                -- Rows for that month already sit in the default partition; leave them there.
                NULL;
            END;
        END IF;
    END LOOP;
END $$;
