-- Group admission and sliding windows (src/store/admission.rs, src/store/sliding.rs).
--
-- Each instance decides the admissions of its concurrent sends together, in one transaction per
-- batch. Instances exclude each other per key with transaction-level advisory locks, taken once
-- per batch in hash order (no deadlock), instead of row locks that wrote every send into the
-- same hot counter row and queued the sends behind it (Lock:tuple, Lock:transactionid).
--
-- `rate_counters` now holds buckets of 1/60 of a window: `window_start` is a bucket's start,
-- `last_at` its latest admission, and `expires_at` the moment it stops counting (last_at +
-- window). A row written by the old fixed windows has no `last_at` and counts as if its last
-- admission were at its window's end, so no limit loosens across the upgrade.

CREATE OR REPLACE FUNCTION smsgate_admission_lock(keys text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    h integer;
BEGIN
    -- 1936 ('sm') keeps these locks apart from other advisory locks; a hash collision between
    -- two keys only makes them wait for each other.
    FOR h IN SELECT DISTINCT hashtext(k) FROM unnest(keys) AS k ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(1936, h);
    END LOOP;
END $$;

ALTER TABLE rate_counters ADD COLUMN IF NOT EXISTS last_at timestamptz;

-- The hot rows are updated once per batch; room on their page keeps those updates HOT.
ALTER TABLE rate_counters SET (fillfactor = 70);

-- The common case of a batch in one statement: when every counter has room for all of the
-- batch's admissions (counting every bucket live at its earliest admission, a superset) and no
-- cooldown holds any of them, all are admitted: the counters take their increments (bucket
-- starts computed by the caller), the cooldowns their next waits, the sessions are opened, and
-- the waits are returned in `cd_*` order. Otherwise nothing is written and NULL is returned: the
-- caller then decides the batch one admission after another under the same locks.
CREATE OR REPLACE FUNCTION smsgate_admit_all(
    q_key text[], q_window integer[], q_limit integer[], q_bucket timestamptz[], q_at timestamptz[],
    cd_key text[], cd_base integer[], cd_max integer[], cd_reset integer[], cd_at timestamptz[],
    s_id uuid[], s_phone text[], s_user text[], s_purpose text[], s_hmac bytea[], s_max integer[],
    s_created timestamptz[], s_expires timestamptz[], s_client text[])
RETURNS integer[]
LANGUAGE plpgsql AS $$
DECLARE
    waits integer[];
BEGIN
    -- Counters may lose a few increments in a crash; sessions are made durable by the
    -- synchronous group commit of the attempt log before any answer leaves.
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM smsgate_admission_lock(q_key || cd_key);
    IF EXISTS (
        SELECT 1
          FROM (SELECT q.key, min(q.lim) AS lim, count(*) AS n, min(q.at) AS at, max(q.win) AS win
                  FROM unnest(q_key, q_limit, q_at, q_window) AS q(key, lim, at, win)
                 GROUP BY q.key) AS k
         WHERE k.n + coalesce((SELECT sum(c.count) FROM rate_counters AS c
                                WHERE c.key = k.key
                                  AND c.window_start > k.at - make_interval(secs => 2 * k.win)
                                  AND coalesce(c.last_at, c.expires_at) > k.at - make_interval(secs => k.win)), 0) > k.lim)
    THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(cd_key) AS k GROUP BY k HAVING count(*) > 1)
       OR EXISTS (SELECT 1 FROM unnest(cd_key, cd_at) AS d(key, at)
                    JOIN resend_cooldowns AS r ON r.key = d.key
                   WHERE r.until > d.at)
    THEN
        RETURN NULL;
    END IF;
    WITH d AS (
        SELECT d.n, d.key, d.at, d.base, d.max,
               CASE WHEN r.last_sent_at > d.at - make_interval(secs => d.reset)
                    THEN greatest(r.resends + 1, 0) ELSE 0 END AS resends
          FROM unnest(cd_key, cd_base, cd_max, cd_reset, cd_at) WITH ORDINALITY AS d(key, base, max, reset, at, n)
          LEFT JOIN resend_cooldowns AS r ON r.key = d.key
    ), w AS (
        SELECT d.*, least(d.base::bigint * (2::bigint ^ least(d.resends, 16))::bigint,
                          greatest(d.max, d.base))::integer AS wait
          FROM d
    ), up AS (
        INSERT INTO resend_cooldowns AS r (key, last_sent_at, resends, until)
        SELECT key, at, resends, at + make_interval(secs => wait) FROM w
        ON CONFLICT (key) DO UPDATE
           SET last_sent_at = EXCLUDED.last_sent_at, resends = EXCLUDED.resends, until = EXCLUDED.until
    )
    SELECT coalesce(array_agg(wait ORDER BY n), '{}') INTO waits FROM w;
    INSERT INTO rate_counters AS c (key, window_start, count, last_at, expires_at)
    SELECT key, bucket, count(*)::integer, max(at), max(at) + make_interval(secs => max(win))
      FROM unnest(q_key, q_bucket, q_at, q_window) AS q(key, bucket, at, win)
     GROUP BY key, bucket
    ON CONFLICT (key, window_start) DO UPDATE
       SET count = c.count + EXCLUDED.count,
           last_at = greatest(c.last_at, EXCLUDED.last_at),
           expires_at = greatest(c.expires_at, EXCLUDED.expires_at);
    INSERT INTO sms_otp_sessions (id, phone, user_id, purpose, code_hmac, max_attempts, created_at, expires_at, client)
    SELECT * FROM unnest(s_id, s_phone, s_user, s_purpose, s_hmac, s_max, s_created, s_expires, s_client);
    RETURN waits;
END $$;
