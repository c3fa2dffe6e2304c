-- Campaigns: bulk sends queued in PostgreSQL so that any instance's workers can claim them
-- (FOR UPDATE SKIP LOCKED under a lease), opt-outs that promotional sends honour, and the shared
-- token buckets that hold each provider's campaign throughput across instances.

CREATE TABLE IF NOT EXISTS sms_campaigns (
    id             uuid PRIMARY KEY,
    client         text NOT NULL,
    name           text NOT NULL,
    type           text NOT NULL CHECK (type IN ('transactional', 'promotional')),
    -- {"text": "..."} or {"template": "...", "vars": ["..."]}
    body           jsonb NOT NULL,
    status         text NOT NULL CHECK (status IN ('running', 'paused', 'cancelled')),
    schedule_at    timestamptz,
    max_per_second integer CHECK (max_per_second > 0),
    duplicates     integer NOT NULL DEFAULT 0,
    invalid        integer NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS sms_campaigns_client_created ON sms_campaigns (client, created_at DESC, id DESC);

-- One row per unique recipient. `state` walks queued → claimed → sending → sent | failed, or
-- ends in skipped_opt_out / cancelled; held_quiet_hours waits for `not_before`. A `sending` row
-- whose lease ran out is `ambiguous`: the provider may have taken it, so it is never resent.
CREATE TABLE IF NOT EXISTS sms_campaign_messages (
    id           uuid PRIMARY KEY,
    campaign_id  uuid NOT NULL REFERENCES sms_campaigns (id) ON DELETE CASCADE,
    seq          integer NOT NULL,
    phone        text NOT NULL,
    -- Per-recipient template values from a CSV upload.
    vars         text[] NOT NULL DEFAULT '{}',
    state        text NOT NULL CHECK (state IN ('queued', 'held_quiet_hours', 'claimed', 'sending', 'sent',
                                                'delivered', 'failed', 'skipped_opt_out', 'ambiguous', 'cancelled')),
    not_before   timestamptz NOT NULL,
    lease_owner  uuid,
    lease_until  timestamptz,
    -- Set with `sending`, before the provider call.
    attempt_id   uuid,
    -- The `sms_messages_log.message_id` of the send.
    message_id   uuid,
    provider     text,
    error        text,
    updated_at   timestamptz NOT NULL,
    UNIQUE (campaign_id, phone)
);
CREATE INDEX IF NOT EXISTS sms_campaign_messages_ready ON sms_campaign_messages (not_before, seq)
    WHERE state IN ('queued', 'held_quiet_hours');
CREATE INDEX IF NOT EXISTS sms_campaign_messages_leased ON sms_campaign_messages (lease_until)
    WHERE state IN ('claimed', 'sending');
CREATE INDEX IF NOT EXISTS sms_campaign_messages_campaign_state ON sms_campaign_messages (campaign_id, state);

CREATE TABLE IF NOT EXISTS sms_opt_outs (
    phone      text NOT NULL,
    -- promotional: no promotional campaign message; all: no campaign message of any type.
    -- Neither blocks an OTP.
    scope      text NOT NULL CHECK (scope IN ('promotional', 'all')),
    -- api, twilio_inbound, ...
    source     text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (phone, scope)
);

-- Token buckets shared by every instance: `provider:<name>` (the provider's max_per_second for
-- campaign traffic) and `campaign:<id>` (a campaign's own max_per_second). Time is the
-- database's clock, one clock for every instance.
CREATE TABLE IF NOT EXISTS sms_throughput_buckets (
    key        text PRIMARY KEY,
    tokens     double precision NOT NULL,
    updated_at timestamptz NOT NULL
);

-- Takes up to `want` tokens from every bucket `keys[i]` (refilled at `rates[i]` per second, at
-- most one second's worth held), the same number from each, and returns how many. `debts[i]`
-- are sends made outside campaigns since the caller last reported (OTP traffic on that
-- provider): they are taken first, so campaigns get only what the cap leaves. A new bucket
-- starts empty, so a campaign never opens with a burst. Rows are locked in key order.
CREATE OR REPLACE FUNCTION smsgate_take_tokens(keys text[], rates double precision[], debts double precision[], want integer)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    at timestamptz := clock_timestamp();
    n integer := array_length(keys, 1);
    avail double precision[];
    grant_n integer := want;
    t double precision;
    i integer;
    idx integer[];
BEGIN
    IF n IS NULL THEN
        RETURN want;
    END IF;
    SELECT array_agg(o ORDER BY keys[o]) INTO idx FROM generate_series(1, n) o;
    FOR j IN 1..n LOOP
        i := idx[j];
        INSERT INTO sms_throughput_buckets (key, tokens, updated_at) VALUES (keys[i], 0, at)
            ON CONFLICT (key) DO NOTHING;
        SELECT LEAST(rates[i], b.tokens + rates[i] * EXTRACT(EPOCH FROM (at - b.updated_at))) - debts[i]
            INTO t FROM sms_throughput_buckets b WHERE b.key = keys[i] FOR UPDATE;
        t := GREATEST(t, -rates[i]);
        avail[i] := t;
        grant_n := LEAST(grant_n, GREATEST(0, floor(t))::integer);
    END LOOP;
    FOR i IN 1..n LOOP
        UPDATE sms_throughput_buckets SET tokens = avail[i] - grant_n, updated_at = at WHERE key = keys[i];
    END LOOP;
    RETURN grant_n;
END $$;
