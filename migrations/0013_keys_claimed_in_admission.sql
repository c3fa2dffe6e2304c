-- A send's `Idempotency-Key` is claimed in its admission: one round trip for both, where a keyed
-- send used to make one for the claim and one for the admission.

-- Claims keys (each (scope, key) at most once per call, in a stable order, so that concurrent
-- calls cannot deadlock): a new key is inserted, an expired one or one whose request died
-- mid-way (no answer `k_lease` seconds after its claim) is taken over. One row per key, in input order:
-- `claimed`, and otherwise the row that holds the key (NULLs if it vanished meanwhile).
CREATE OR REPLACE FUNCTION smsgate_claim_keys(
    k_scope text[], k_key text[], k_hash bytea[], k_at timestamptz[], k_ttl integer[], k_lease integer[])
RETURNS TABLE (n bigint, claimed boolean, request_hash bytea, status integer, response jsonb)
-- plpgsql, not sql: its plan is kept for the session instead of made at every call. A plan
-- made while the table was small would read it whole at every call as it grows: keys are found
-- by their index, always.
LANGUAGE plpgsql SET enable_seqscan = off AS $$
BEGIN
    RETURN QUERY
    WITH u AS (
        SELECT * FROM unnest(k_scope, k_key, k_hash, k_at, k_ttl, k_lease) WITH ORDINALITY AS u(scope, key, hash, at, ttl, lease, n)
    ), c AS (
        INSERT INTO idempotency_keys AS k (scope, key, request_hash, claimed_at, expires_at)
        SELECT u.scope, u.key, u.hash, u.at, u.at + make_interval(secs => u.ttl) FROM u ORDER BY u.n
        ON CONFLICT (scope, key) DO UPDATE
           SET request_hash = EXCLUDED.request_hash, status = NULL, response = NULL,
               claimed_at = EXCLUDED.claimed_at, expires_at = EXCLUDED.expires_at
         WHERE k.expires_at <= EXCLUDED.claimed_at
            OR (k.status IS NULL
                AND k.claimed_at <= EXCLUDED.claimed_at
                                    - make_interval(secs => (SELECT u.lease FROM u WHERE u.scope = k.scope AND u.key = k.key)))
        RETURNING k.scope, k.key
    )
    SELECT u.n, c.key IS NOT NULL, k.request_hash, k.status, k.response
      FROM u
      LEFT JOIN c ON c.scope = u.scope AND c.key = u.key
      LEFT JOIN idempotency_keys AS k ON k.scope = u.scope AND k.key = u.key
     ORDER BY u.n;
END $$;

-- Stores the answers of claimed keys (`s_*`) and forgets released ones (`r_*`, only while
-- unanswered: a request whose lease ran out must not erase the answer of the request that took
-- its key over). Each key at most once per call.
CREATE OR REPLACE FUNCTION smsgate_keep_answers(
    s_scope text[], s_key text[], s_status integer[], s_response jsonb[], r_scope text[], r_key text[])
RETURNS void
LANGUAGE plpgsql SET enable_seqscan = off AS $$
BEGIN
    UPDATE idempotency_keys AS k SET status = u.status, response = u.response
      FROM unnest(s_scope, s_key, s_status, s_response) AS u(scope, key, status, response)
     WHERE k.scope = u.scope AND k.key = u.key;
    DELETE FROM idempotency_keys AS k USING unnest(r_scope, r_key) AS u(scope, key)
     WHERE k.scope = u.scope AND k.key = u.key AND k.status IS NULL;
END $$;

-- The batch's advisory locks in one statement, in hash order, where 0006 took them one
-- statement each.
CREATE OR REPLACE FUNCTION smsgate_admission_lock(keys text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- 1936 ('sm') keeps these locks apart from other advisory locks; a hash collision between
    -- two keys only makes them wait for each other.
    PERFORM pg_advisory_xact_lock(1936, h)
       FROM (SELECT DISTINCT hashtext(k) AS h FROM unnest(keys) AS k ORDER BY 1) AS s;
END $$;

-- 0011's function, with each quota and cooldown naming its request (`q_req`, `cd_req`) and the
-- batch's keys to claim (`k_*`). The checks are made first, over every request of the batch;
-- then the keys are claimed, and the requests whose key is held take nothing. `waits` follows
-- `cd_key` (NULL where the request's key was held); `k_claimed` and the held rows follow `k_key`.
-- `waits` is NULL when the batch cannot be decided wholesale; nothing was written then.
DROP FUNCTION IF EXISTS smsgate_admit_all(
    text[], integer[], integer[], timestamptz[], timestamptz[],
    text[], integer[], integer[], integer[], timestamptz[]);

CREATE OR REPLACE FUNCTION smsgate_admit_all(
    q_req integer[], q_key text[], q_window integer[], q_limit integer[], q_bucket timestamptz[], q_at timestamptz[],
    cd_req integer[], cd_key text[], cd_base integer[], cd_max integer[], cd_reset integer[], cd_at timestamptz[],
    k_req integer[], k_scope text[], k_key text[], k_hash bytea[], k_at timestamptz[], k_ttl integer[], k_lease integer[],
    OUT waits integer[], OUT k_claimed boolean[], OUT k_hash_found bytea[], OUT k_status integer[], OUT k_response jsonb[])
LANGUAGE plpgsql AS $$
DECLARE
    held integer[];
BEGIN
    -- Counters may lose a few increments in a crash; a claimed key is written with them.
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
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(cd_key) AS k GROUP BY k HAVING count(*) > 1)
       OR EXISTS (SELECT 1 FROM unnest(cd_key, cd_at) AS d(key, at)
                    JOIN resend_cooldowns AS r ON r.key = d.key
                   WHERE r.until > d.at)
    THEN
        RETURN;
    END IF;
    IF cardinality(k_key) = 0 THEN
        k_claimed := '{}';
        k_hash_found := '{}';
        k_status := '{}';
        k_response := '{}';
        held := '{}';
    ELSE
        SELECT array_agg(c.claimed ORDER BY c.n), array_agg(c.request_hash ORDER BY c.n),
               array_agg(c.status ORDER BY c.n), array_agg(c.response ORDER BY c.n)
          INTO k_claimed, k_hash_found, k_status, k_response
          FROM smsgate_claim_keys(k_scope, k_key, k_hash, k_at, k_ttl, k_lease) AS c;
        held := ARRAY(SELECT k_req[i] FROM generate_subscripts(k_req, 1) AS i WHERE NOT k_claimed[i]);
    END IF;
    WITH d AS (
        SELECT d.n, d.req, d.key, d.at, d.base, d.max,
               CASE WHEN r.last_sent_at > d.at - make_interval(secs => d.reset)
                    THEN greatest(r.resends + 1, 0) ELSE 0 END AS resends
          FROM unnest(cd_req, cd_key, cd_base, cd_max, cd_reset, cd_at) WITH ORDINALITY AS d(req, key, base, max, reset, at, n)
          LEFT JOIN resend_cooldowns AS r ON r.key = d.key
    ), w AS (
        SELECT d.*, least(d.base::bigint * (2::bigint ^ least(d.resends, 16))::bigint,
                          greatest(d.max, d.base))::integer AS wait
          FROM d
    ), up AS (
        INSERT INTO resend_cooldowns AS r (key, last_sent_at, resends, until)
        SELECT key, at, resends, at + make_interval(secs => wait) FROM w WHERE req <> ALL (held)
        ON CONFLICT (key) DO UPDATE
           SET last_sent_at = EXCLUDED.last_sent_at, resends = EXCLUDED.resends, until = EXCLUDED.until
    )
    SELECT coalesce(array_agg(CASE WHEN req = ANY (held) THEN NULL ELSE wait END ORDER BY n), '{}') INTO waits FROM w;
    INSERT INTO rate_counters AS c (key, window_start, count, last_at, expires_at)
    SELECT key, bucket, count(*)::integer, max(at), max(at) + make_interval(secs => max(win))
      FROM unnest(q_req, q_key, q_bucket, q_at, q_window) AS q(req, key, bucket, at, win)
     WHERE req <> ALL (held)
     GROUP BY key, bucket
    ON CONFLICT (key, window_start) DO UPDATE
       SET count = c.count + EXCLUDED.count,
           last_at = greatest(c.last_at, EXCLUDED.last_at),
           expires_at = greatest(c.expires_at, EXCLUDED.expires_at);
END $$;
