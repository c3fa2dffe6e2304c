-- A send's session is written once, with its attempts, by the group commit: admission no
-- longer inserts it (and the commit no longer updates it). `smsgate_admit_all` loses its
-- session columns.
DROP FUNCTION IF EXISTS smsgate_admit_all(
    text[], integer[], integer[], timestamptz[], timestamptz[],
    text[], integer[], integer[], integer[], timestamptz[],
    uuid[], text[], text[], text[], bytea[], integer[], timestamptz[], timestamptz[], text[]);

CREATE OR REPLACE FUNCTION smsgate_admit_all(
    q_key text[], q_window integer[], q_limit integer[], q_bucket timestamptz[], q_at timestamptz[],
    cd_key text[], cd_base integer[], cd_max integer[], cd_reset integer[], cd_at timestamptz[])
RETURNS integer[]
LANGUAGE plpgsql AS $$
DECLARE
    waits integer[];
BEGIN
    -- Counters may lose a few increments in a crash.
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
    RETURN waits;
END $$;
