//! `LimitStore` for PostgreSQL: one statement per admission (the `smsgate_admit` function),
//! idempotency keys claimed with `INSERT … ON CONFLICT`, contacts upserted.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Admission, Contact, CooldownSpec, IdempotencyClaim, LimitStore, PostgresStore, Quota, Session, StoreError};

#[async_trait]
impl LimitStore for PostgresStore {
    async fn admit_opening(
        &self,
        quotas: &[Quota],
        cooldown: Option<&CooldownSpec>,
        opening: Option<&Session>,
        now: DateTime<Utc>,
    ) -> Result<Admission, StoreError> {
        self.bounded(async move {
            let client = self.pool().get().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT refused_key, retry_after_secs, resend_after_secs
                       FROM smsgate_admit($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
                )
                .await?;
            let keys: Vec<&str> = quotas.iter().map(|q| q.key.as_str()).collect();
            let windows: Vec<i32> = quotas.iter().map(|q| q.window_secs as i32).collect();
            let limits: Vec<i32> = quotas.iter().map(|q| q.limit.min(i32::MAX as u32) as i32).collect();
            let row = client
                .query_one(
                    &stmt,
                    &[
                        &keys,
                        &windows,
                        &limits,
                        &cooldown.map(|c| c.key.as_str()),
                        &cooldown.map(|c| c.base_secs as i32),
                        &cooldown.map(|c| c.max_secs as i32),
                        &cooldown.map(|c| c.reset_secs as i32),
                        &now,
                        &opening.map(|s| s.id),
                        &opening.map(|s| s.phone.as_str()),
                        &opening.and_then(|s| s.user_id.as_deref()),
                        &opening.map(|s| s.purpose.as_str()),
                        &opening.map(|s| s.code_hmac.as_slice()),
                        &opening.map(|s| s.max_attempts as i32),
                        &opening.map(|s| s.created_at),
                        &opening.map(|s| s.expires_at),
                        &opening.map_or("", |s| s.client.as_str()),
                    ],
                )
                .await?;
            let refused: Option<String> = row.get(0);
            Ok(match refused {
                Some(key) => Admission::Refused {
                    key,
                    retry_after_secs: row.get::<_, Option<i64>>(1).unwrap_or(1).max(1) as u64,
                },
                None => Admission::Admitted {
                    resend_after_secs: row.get::<_, Option<i64>>(2).map(|s| s as u64),
                },
            })
        })
        .await
    }

    async fn claim_idempotency(
        &self,
        scope: &str,
        key: &str,
        hash: &[u8],
        now: DateTime<Utc>,
        ttl_secs: u32,
        lease_secs: u32,
    ) -> Result<IdempotencyClaim, StoreError> {
        self.bounded(async move {
            let client = self.pool().get().await?;
            // Insert, or take over a row that expired or whose first request died mid-way; either
            // way `claimed` is true only for the one request that wrote the row. `$4` is cast at each
            // use: left to inference it is deduced both as timestamptz and as timestamp, and
            // PostgreSQL refuses to prepare the statement.
            let stmt = client
                .prepare_cached(
                    "INSERT INTO idempotency_keys AS k (scope, key, request_hash, claimed_at, expires_at)
                     VALUES ($1, $2, $3, $4::timestamptz, $4::timestamptz + make_interval(secs => $5::float8))
                     ON CONFLICT (scope, key) DO UPDATE
                        SET request_hash = EXCLUDED.request_hash, status = NULL, response = NULL,
                            claimed_at = EXCLUDED.claimed_at, expires_at = EXCLUDED.expires_at
                      WHERE k.expires_at <= $4::timestamptz
                         OR (k.status IS NULL AND k.claimed_at <= $4::timestamptz - make_interval(secs => $6::float8))
                     RETURNING true",
                )
                .await?;
            let ttl = ttl_secs as f64;
            let lease = lease_secs as f64;
            if client.query_opt(&stmt, &[&scope, &key, &hash, &now, &ttl, &lease]).await?.is_some() {
                return Ok(IdempotencyClaim::Claimed);
            }
            let row = client
                .query_opt(
                    "SELECT request_hash, status, response FROM idempotency_keys WHERE scope = $1 AND key = $2",
                    &[&scope, &key],
                )
                .await?;
            let Some(row) = row else {
                // Released between the two statements: the caller may try again.
                return Ok(IdempotencyClaim::InFlight);
            };
            let stored: Vec<u8> = row.get(0);
            let status: Option<i32> = row.get(1);
            let response: Option<serde_json::Value> = row.get(2);
            Ok(if stored != hash {
                IdempotencyClaim::Conflict
            } else {
                match (status, response) {
                    (Some(status), Some(body)) => IdempotencyClaim::Replay {
                        status: status as u16,
                        body,
                    },
                    _ => IdempotencyClaim::InFlight,
                }
            })
        })
        .await
    }

    async fn complete_idempotency(&self, scope: &str, key: &str, status: u16, body: &serde_json::Value) -> Result<(), StoreError> {
        self.bounded(async move {
            let client = self.pool().get().await?;
            client
                .execute(
                    "UPDATE idempotency_keys SET status = $3, response = $4 WHERE scope = $1 AND key = $2",
                    &[&scope, &key, &(status as i32), body],
                )
                .await?;
            Ok(())
        })
        .await
    }

    async fn release_idempotency(&self, scope: &str, key: &str) -> Result<(), StoreError> {
        self.bounded(async move {
            let client = self.pool().get().await?;
            client
                .execute(
                    "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND status IS NULL",
                    &[&scope, &key],
                )
                .await?;
            Ok(())
        })
        .await
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
            let client = self.pool().get().await?;
            let keys: Vec<&str> = quotas.iter().map(|q| q.key.as_str()).collect();
            let windows: Vec<f64> = quotas.iter().map(|q| f64::from(q.window_secs.max(1))).collect();
            let limits: Vec<i32> = quotas.iter().map(|q| q.limit.min(i32::MAX as u32) as i32).collect();
            let row = client
                .query_opt(
                    "SELECT q.key, ceil(extract(epoch FROM c.window_start + make_interval(secs => q.window_secs) - $4::timestamptz))::int8
                       FROM UNNEST($1::text[], $2::float8[], $3::int4[]) WITH ORDINALITY AS q(key, window_secs, lim, n)
                       JOIN rate_counters AS c
                         ON c.key = q.key
                        AND c.window_start = to_timestamp(floor(extract(epoch FROM $4::timestamptz) / q.window_secs) * q.window_secs)
                      WHERE c.count >= q.lim
                      ORDER BY q.n LIMIT 1",
                    &[&keys, &windows, &limits, &now],
                )
                .await?;
            Ok(match row {
                Some(r) => Admission::Refused {
                    key: r.get(0),
                    retry_after_secs: r.get::<_, Option<i64>>(1).unwrap_or(1).max(1) as u64,
                },
                None => Admission::Admitted { resend_after_secs: None },
            })
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
