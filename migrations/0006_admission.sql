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
