-- Provider health counts its sessions as they are written, per ten seconds, instead of reading every
-- session of its span at each refresh. That read grew with traffic: 238,000 sessions took 0.92 s
-- of a database core every ten seconds, and the six-hour baseline at a sustained 2,000 OTP/s
-- would be 43 million rows. A refresh now reads at most one row per ten seconds, provider,
-- destination prefix and writing connection, however many sessions there were.
--
-- Sessions are counted by the ten seconds they were opened in (`opened`, its start: ten seconds
-- since the Unix epoch), per provider that took an SMS of them and destination prefix (`+` and
-- four digits):
--   sent           sessions the provider carried;
--   sent_verified  of those, the sessions verified (a read counts only these as sent where the
--                  ten seconds are not wholly settled);
--   verified       sessions verified with the provider's code (the session's `verified_by`, else
--                  the provider of its first SMS);
--   delay_secs     seconds from session to verification, summed over `verified`.
-- The group commit adds `sent` with the attempts; a verification adds the rest with its status.
-- Each connection writes rows of its own (`writer`, its backend's pid), so no two transactions
-- ever wait on one row: counts are summed when read.
CREATE TABLE IF NOT EXISTS provider_tallies (
    opened        timestamptz NOT NULL,
    provider      text NOT NULL,
    prefix        text NOT NULL,
    writer        integer NOT NULL,
    sent          bigint NOT NULL DEFAULT 0,
    sent_verified bigint NOT NULL DEFAULT 0,
    verified      bigint NOT NULL DEFAULT 0,
    delay_secs    float8 NOT NULL DEFAULT 0,
    PRIMARY KEY (opened, provider, prefix, writer)
);
-- The gateway's own state, readable by no one but the owner (as 0003 does for the counters).
ALTER TABLE provider_tallies ENABLE ROW LEVEL SECURITY;

-- The sessions of the last day (the default baseline is six hours) are counted from their rows
-- (`writer` 0). Sessions an instance still running the previous version writes after this are
-- not counted until it is replaced.
INSERT INTO provider_tallies (opened, provider, prefix, writer, sent, sent_verified, verified, delay_secs)
SELECT date_bin('10 seconds', s.created_at, 'epoch'), p.provider, left(s.phone, 5), 0, count(*),
       count(*) FILTER (WHERE s.status = 'verified'),
       count(*) FILTER (WHERE s.status = 'verified' AND coalesce(s.verified_by = p.provider, p.provider = s.first_carrier)),
       coalesce(sum(extract(epoch FROM s.verified_at - s.created_at)::float8)
                    FILTER (WHERE s.status = 'verified'
                              AND coalesce(s.verified_by = p.provider, p.provider = s.first_carrier)), 0)
  FROM sms_otp_sessions AS s, unnest(s.carriers) AS p(provider)
 WHERE s.created_at >= now() - interval '1 day'
 GROUP BY 1, 2, 3
ON CONFLICT DO NOTHING;
