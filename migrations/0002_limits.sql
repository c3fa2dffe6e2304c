-- Abuse limits that hold across instances: fixed-window counters, resend cooldowns and
-- idempotency keys, all taken in one statement per send.

CREATE TABLE IF NOT EXISTS rate_counters (
    key          text NOT NULL,
    window_start timestamptz NOT NULL,
    count        integer NOT NULL DEFAULT 0,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (key, window_start)
);
CREATE INDEX IF NOT EXISTS rate_counters_expires ON rate_counters (expires_at);

CREATE TABLE IF NOT EXISTS resend_cooldowns (
    key          text PRIMARY KEY,
    last_sent_at timestamptz NOT NULL,
    resends      integer NOT NULL DEFAULT 0,
    until        timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS idempotency_keys (
    scope        text NOT NULL,
    key          text NOT NULL,
    request_hash bytea NOT NULL,
    status       integer,
    response     jsonb,
    claimed_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_expires ON idempotency_keys (expires_at);

-- Takes one from each counter (keys[i] allows limits[i] per windows[i] seconds) and the resend
-- cooldown `cd_key`, all or nothing, and when admitted opens the OTP session `s_*` in the same
-- statement (one round trip before the provider call). Rows are locked in key order so
-- concurrent calls cannot deadlock, and the checks see every instance's increments.
CREATE OR REPLACE FUNCTION smsgate_admit(
    keys text[], windows integer[], limits integer[],
    cd_key text, cd_base integer, cd_max integer, cd_reset integer, at timestamptz,
    s_id uuid DEFAULT NULL, s_phone text DEFAULT NULL, s_user text DEFAULT NULL, s_purpose text DEFAULT NULL,
    s_hmac bytea DEFAULT NULL, s_max integer DEFAULT NULL, s_created timestamptz DEFAULT NULL,
    s_expires timestamptz DEFAULT NULL)
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
        INSERT INTO sms_otp_sessions (id, phone, user_id, purpose, code_hmac, max_attempts, created_at, expires_at)
             VALUES (s_id, s_phone, s_user, s_purpose, s_hmac, s_max, s_created, s_expires);
    END IF;
    RETURN QUERY SELECT NULL::text, NULL::bigint, wait::bigint;
END $$;
