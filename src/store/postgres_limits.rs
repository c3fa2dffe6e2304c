//! `LimitStore` for PostgreSQL: admissions decided in batches (`admission.rs`),
//! idempotency keys claimed with `INSERT … ON CONFLICT`, contacts upserted.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::admission;
use super::{Admission, Contact, CooldownSpec, KeyClaim, LimitStore, PostgresStore, Quota, StoreError};

#[async_trait]
impl LimitStore for PostgresStore {
    async fn admit(&self, quotas: &[Quota], cooldown: Option<&CooldownSpec>, now: DateTime<Utc>) -> Result<Admission, StoreError> {
        self.admit_in_batch(None, quotas, cooldown, now).await
    }

    async fn admit_claiming(
        &self,
        claim: &KeyClaim,
        quotas: &[Quota],
        cooldown: Option<&CooldownSpec>,
        now: DateTime<Utc>,
    ) -> Result<Admission, StoreError> {
        self.admit_in_batch(Some(claim), quotas, cooldown, now).await
    }

    fn keep_answer(&self, scope: &str, key: &str, answer: Option<(u16, serde_json::Value)>) {
        self.answers().queue(super::answers::Answer {
            scope: scope.to_string(),
            key: key.to_string(),
            answer,
        });
    }

    async fn flush_answers(&self) {
        self.answers().flush().await;
    }

    async fn get_contact(&self, owner: &str, user_id: &str) -> Result<Option<Contact>, StoreError> {
        self.bounded(async move {
            let client = self.pool().get().await?;
            let row = client
                .query_opt(
                    "SELECT client, user_id, phone, otp_enabled, preferred_provider FROM user_contact_settings
                      WHERE client = $1 AND user_id = $2",
                    &[&owner, &user_id],
                )
                .await?;
            Ok(row.map(|r| Contact {
                client: r.get("client"),
                user_id: r.get("user_id"),
                phone: r.get("phone"),
                otp_enabled: r.get("otp_enabled"),
                preferred_provider: r.get("preferred_provider"),
            }))
        })
        .await
    }

    async fn put_contact(&self, c: &Contact) -> Result<(), StoreError> {
        self.bounded(async move {
            let client = self.pool().get().await?;
            client
                .execute(
                    "INSERT INTO user_contact_settings (client, user_id, phone, otp_enabled, preferred_provider, updated_at)
                     VALUES ($1, $2, $3, $4, $5, now())
                     ON CONFLICT (client, user_id) DO UPDATE
                        SET phone = EXCLUDED.phone, otp_enabled = EXCLUDED.otp_enabled,
                            preferred_provider = EXCLUDED.preferred_provider, updated_at = now()",
                    &[&c.client, &c.user_id, &c.phone, &c.otp_enabled, &c.preferred_provider],
                )
                .await?;
            Ok(())
        })
        .await
    }

    async fn peek(&self, quotas: &[Quota], now: DateTime<Utc>) -> Result<Admission, StoreError> {
        self.bounded(async move {
            let ledger = admission::snapshot(self.pool(), quotas, now).await?;
            Ok(ledger.check(quotas, now).unwrap_or(Admission::Admitted { resend_after_secs: None }))
        })
        .await
    }

    async fn sweep(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.bounded(async move {
            let client = self.pool().get().await?;
            let counters = client.execute("DELETE FROM rate_counters WHERE expires_at <= $1", &[&now]).await?;
            let keys = client
                .execute("DELETE FROM idempotency_keys WHERE expires_at <= $1", &[&now])
                .await?;
            // A cooldown row outlives its wait by a day: its resend count is what doubles the next
            // wait. `$1` is cast: left to inference, `$1 - interval` makes it an interval.
            let cooldowns = client
                .execute(
                    "DELETE FROM resend_cooldowns WHERE until <= $1::timestamptz - interval '1 day'",
                    &[&now],
                )
                .await?;
            Ok(counters + keys + cooldowns)
        })
        .await
    }
}

impl PostgresStore {
    /// Queues one admission for the next batch (`admission.rs`) and waits for its decision.
    async fn admit_in_batch(
        &self,
        claim: Option<&KeyClaim>,
        quotas: &[Quota],
        cooldown: Option<&CooldownSpec>,
        now: DateTime<Utc>,
    ) -> Result<Admission, StoreError> {
        let request = admission::Request {
            quotas: quotas.to_vec(),
            cooldown: cooldown.cloned(),
            claim: claim.cloned(),
            now,
        };
        self.bounded(self.admission().admit(request)).await
    }
}
