//! `LimitStore` for the in-memory store: the same all-or-nothing rules, for one process.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use super::sliding::Ledger;
use super::{Admission, Contact, CooldownSpec, IdempotencyClaim, KeyClaim, LimitStore, Quota, StoreError};

/// The limits half of `MemoryStore`, behind its own lock.
#[derive(Default)]
pub struct MemoryLimits {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Sliding-window counters and resend cooldowns.
    ledger: Ledger,
    idempotency: super::KeyMap<(String, String), Idem>,
    /// (client, user id) → contact.
    contacts: HashMap<(String, String), Contact>,
}

struct Idem {
    hash: Vec<u8>,
    answer: Option<(u16, serde_json::Value)>,
    claimed_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl MemoryLimits {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn claim(&mut self, scope: &str, key: &str, hash: &[u8], now: DateTime<Utc>, ttl_secs: u32, lease_secs: u32) -> IdempotencyClaim {
        let id = (scope.to_string(), key.to_string());
        if let Some(row) = self.idempotency.get(&id) {
            let lease_over = row.answer.is_none() && row.claimed_at + Duration::seconds(lease_secs as i64) <= now;
            if row.expires_at > now && !lease_over {
                return if row.hash != hash {
                    IdempotencyClaim::Conflict
                } else if let Some((status, body)) = &row.answer {
                    IdempotencyClaim::Replay {
                        status: *status,
                        body: body.clone(),
                    }
                } else {
                    IdempotencyClaim::InFlight
                };
            }
        }
        let row = Idem {
            hash: hash.to_vec(),
            answer: None,
            claimed_at: now,
            expires_at: now + Duration::seconds(ttl_secs as i64),
        };
        self.idempotency.insert(id, row);
        IdempotencyClaim::Claimed
    }
}

#[async_trait]
impl LimitStore for super::MemoryStore {
    async fn admit(&self, quotas: &[Quota], cooldown: Option<&CooldownSpec>, now: DateTime<Utc>) -> Result<Admission, StoreError> {
        Ok(self.limits.lock().ledger.take(quotas, cooldown, now))
    }

    async fn admit_claiming(
        &self,
        claim: &KeyClaim,
        quotas: &[Quota],
        cooldown: Option<&CooldownSpec>,
        now: DateTime<Utc>,
    ) -> Result<Admission, StoreError> {
        let mut inner = self.limits.lock();
        let found = inner.claim(&claim.scope, &claim.key, &claim.hash, now, claim.ttl_secs, claim.lease_secs);
        if found != IdempotencyClaim::Claimed {
            return Ok(Admission::KeyHeld(found));
        }
        let admission = inner.ledger.take(quotas, cooldown, now);
        if let Admission::Refused { .. } = admission {
            inner.idempotency.remove(&(claim.scope.clone(), claim.key.clone()));
        }
        Ok(admission)
    }

    fn keep_answer(&self, scope: &str, key: &str, answer: Option<(u16, serde_json::Value)>) {
        let id = (scope.to_string(), key.to_string());
        let mut inner = self.limits.lock();
        match answer {
            Some(answer) => {
                if let Some(row) = inner.idempotency.get_mut(&id) {
                    row.answer = Some(answer);
                }
            }
            // Only an unanswered claim: a request whose lease ran out must not erase the answer
            // of the request that took its key over (PostgreSQL deletes `WHERE status IS NULL` too).
            None => {
                if inner.idempotency.get(&id).is_some_and(|row| row.answer.is_none()) {
                    inner.idempotency.remove(&id);
                }
            }
        }
    }

    async fn flush_answers(&self) {}

    async fn get_contact(&self, client: &str, user_id: &str) -> Result<Option<Contact>, StoreError> {
        Ok(self.limits.lock().contacts.get(&(client.to_string(), user_id.to_string())).cloned())
    }

    async fn put_contact(&self, contact: &Contact) -> Result<(), StoreError> {
        let id = (contact.client.clone(), contact.user_id.clone());
        self.limits.lock().contacts.insert(id, contact.clone());
        Ok(())
    }

    async fn peek(&self, quotas: &[Quota], now: DateTime<Utc>) -> Result<Admission, StoreError> {
        Ok(self
            .limits
            .lock()
            .ledger
            .check(quotas, now)
            .unwrap_or(Admission::Admitted { resend_after_secs: None }))
    }

    async fn sweep(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut inner = self.limits.lock();
        let before = inner.idempotency.len();
        inner.idempotency.retain(|_, row| row.expires_at > now);
        let keys = (before - inner.idempotency.len()) as u64;
        Ok(keys + inner.ledger.sweep(now))
    }
}
