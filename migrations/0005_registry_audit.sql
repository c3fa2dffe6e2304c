-- The live provider registry. Once a database exists `api_integrations` is the truth for every
-- instance: `providers.toml` only seeds it while it is empty. A secret set through the admin API
-- is AES-256-GCM ciphertext whose key is named by `secret_key_id`, so master keys can rotate.
-- `registry_version` counts committed changes: instances compare it to what they run, and the
-- change's NOTIFY carries it. `admin_audit_log` records who changed what, written in the same
-- transaction as the change; it never holds a secret.

ALTER TABLE api_integrations ADD COLUMN IF NOT EXISTS secret_key_id text;
ALTER TABLE api_integrations ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 0;

CREATE TABLE IF NOT EXISTS registry_version (
    id      boolean PRIMARY KEY DEFAULT true CHECK (id),
    version bigint NOT NULL DEFAULT 0
);
INSERT INTO registry_version (id, version) VALUES (true, 0) ON CONFLICT (id) DO NOTHING;

CREATE TABLE IF NOT EXISTS admin_audit_log (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,
    action  text NOT NULL,
    target  text NOT NULL,
    before  jsonb,
    after   jsonb
);

-- Like the rest of the gateway's own state: readable by no one but the owner.
ALTER TABLE registry_version ENABLE ROW LEVEL SECURITY;
ALTER TABLE admin_audit_log ENABLE ROW LEVEL SECURITY;
