-- Apps are isolated from each other, and a code verifies only the session it was sent for.
--
-- * Sessions and step-up contacts belong to the calling app (client) that made them; another
--   app sees none of them. Rows from before this migration have no owner (''): at start the
--   gateway gives them to the only app that may send, when there is exactly one, and otherwise
--   leaves them to admins (README, "Apps are isolated").
-- * `local_code_sent`: whether any SMS of the session carried smsgate's own code. A session
--   whose only SMS carried a provider-held code (2Factor AUTOGEN, Twilio Verify) must not also
--   accept the local code, which nobody received. Older rows keep accepting it, as before.
-- * `verify_lease_until`: a verification that asks a provider to check a code holds the session
--   until then, so concurrent checks of one session are serialised across instances.

ALTER TABLE sms_otp_sessions ADD COLUMN IF NOT EXISTS client text NOT NULL DEFAULT '';
ALTER TABLE sms_otp_sessions ADD COLUMN IF NOT EXISTS local_code_sent boolean NOT NULL DEFAULT true;
ALTER TABLE sms_otp_sessions ADD COLUMN IF NOT EXISTS verify_lease_until timestamptz;
ALTER TABLE sms_otp_sessions ALTER COLUMN local_code_sent SET DEFAULT false;

-- A provider that checks codes by number (MSG91 autogen) keeps only the newest code of a number:
-- only the newest session holding its code may ask it.
CREATE INDEX IF NOT EXISTS sms_otp_sessions_phone_created ON sms_otp_sessions (phone, created_at);

ALTER TABLE user_contact_settings ADD COLUMN IF NOT EXISTS client text NOT NULL DEFAULT '';
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_constraint
                WHERE conrelid = 'user_contact_settings'::regclass AND contype = 'p'
                  AND array_length(conkey, 1) = 1) THEN
        EXECUTE (SELECT format('ALTER TABLE user_contact_settings DROP CONSTRAINT %I', conname)
                   FROM pg_constraint WHERE conrelid = 'user_contact_settings'::regclass AND contype = 'p');
        ALTER TABLE user_contact_settings ADD PRIMARY KEY (client, user_id);
    END IF;
END $$;

-- smsgate_admit opens the session with its owner; the old signature is replaced.
DROP FUNCTION IF EXISTS smsgate_admit(text[], integer[], integer[], text, integer, integer, integer, timestamptz,
                                      uuid, text, text, text, bytea, integer, timestamptz, timestamptz);
CREATE OR REPLACE FUNCTION smsgate_admit(
    keys text[], windows integer[], limits integer[],
    cd_key text, cd_base integer, cd_max integer, cd_reset integer, at timestamptz,
    s_id uuid DEFAULT NULL, s_phone text DEFAULT NULL, s_user text DEFAULT NULL, s_purpose text DEFAULT NULL,
    s_hmac bytea DEFAULT NULL, s_max integer DEFAULT NULL, s_created timestamptz DEFAULT NULL,
    s_expires timestamptz DEFAULT NULL, s_client text DEFAULT '')
RETURNS TABLE (refused_key text, retry_after_secs bigint, resend_after_secs bigint)
LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    ws timestamptz;
    c integer;
    cd record;
    n_resends integer := 0;
    wait integer;
    order_idx integer[];
BEGIN
    -- Counters may lose a few increments in a crash; not waiting for the WAL flush keeps the
    -- hot rows (one per calling app) locked for microseconds instead of a disk sync.
    PERFORM set_config('synchronous_commit', 'off', true);
    SELECT coalesce(array_agg(n ORDER BY keys[n]), '{}') INTO order_idx
      FROM generate_subscripts(keys, 1) AS n;
    FOREACH i IN ARRAY order_idx LOOP
        ws := to_timestamp(floor(extract(epoch FROM at) / windows[i]) * windows[i]);
        INSERT INTO rate_counters (key, window_start, count, expires_at)
             VALUES (keys[i], ws, 0, ws + make_interval(secs => windows[i]))
        ON CONFLICT (key, window_start) DO NOTHING;
        SELECT count INTO c FROM rate_counters WHERE key = keys[i] AND window_start = ws FOR UPDATE;
        IF c >= limits[i] THEN
            RETURN QUERY SELECT keys[i], ceil(extract(epoch FROM (ws + make_interval(secs => windows[i]) - at)))::bigint, NULL::bigint;
            RETURN;
        END IF;
    END LOOP;
    IF cd_key IS NOT NULL THEN
        INSERT INTO resend_cooldowns (key, last_sent_at, resends, until)
             VALUES (cd_key, '-infinity', -1, '-infinity')
        ON CONFLICT (key) DO NOTHING;
        SELECT * INTO cd FROM resend_cooldowns WHERE key = cd_key FOR UPDATE;
        IF cd.until > at THEN
            RETURN QUERY SELECT cd_key, ceil(extract(epoch FROM (cd.until - at)))::bigint, NULL::bigint;
            RETURN;
        END IF;
        IF cd.last_sent_at > at - make_interval(secs => cd_reset) THEN
            n_resends := cd.resends + 1;
        END IF;
        wait := least(cd_base::bigint * (2::bigint ^ least(n_resends, 16)), greatest(cd_max, cd_base))::integer;
        UPDATE resend_cooldowns SET last_sent_at = at, resends = n_resends, until = at + make_interval(secs => wait)
         WHERE key = cd_key;
    END IF;
    FOREACH i IN ARRAY order_idx LOOP
        UPDATE rate_counters SET count = count + 1
         WHERE key = keys[i] AND window_start = to_timestamp(floor(extract(epoch FROM at) / windows[i]) * windows[i]);
    END LOOP;
    IF s_id IS NOT NULL THEN
        -- Committed without waiting for the WAL like the counters; the group-committed attempt
        -- log that follows is synchronous, and its flush makes this row durable before any
        -- answer leaves.
        INSERT INTO sms_otp_sessions (id, phone, user_id, purpose, code_hmac, max_attempts, created_at, expires_at, client)
             VALUES (s_id, s_phone, s_user, s_purpose, s_hmac, s_max, s_created, s_expires, s_client);
    END IF;
    RETURN QUERY SELECT NULL::text, NULL::bigint, wait::bigint;
END $$;
