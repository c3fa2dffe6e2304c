//! `LimitStore` for the in-memory store: the same all-or-nothing rules, for one process.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use super::{cooldown_wait, Admission, Contact, CooldownSpec, IdempotencyClaim, LimitStore, Quota, Session, Store, StoreError};

/// The limits half of `MemoryStore`, behind its own lock.
#[derive(Default)]
pub struct MemoryLimits {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// (key, window start in epoch seconds) → (count, expires).
    counters: HashMap<(String, i64), (u32, DateTime<Utc>)>,
    /// key → (last sent, resends, until).
    cooldowns: HashMap<String, (DateTime<Utc>, u32, DateTime<Utc>)>,
    idempotency: HashMap<(String, String), Idem>,
    /// (client, user id) → contact.
    contacts: HashMap<(String, String), Contact>,
}

struct Idem {
    hash: Vec<u8>,
    answer: Option<(u16, serde_json::Value)>,
    claimed_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

fn window_start(now: DateTime<Utc>, window_secs: u32) -> i64 {
    let w = window_secs.max(1) as i64;
    now.timestamp().div_euclid(w) * w
}

/// `q` is spent until its window (from `start`) ends.
fn refusal(q: &Quota, start: i64, now: DateTime<Utc>) -> Admission {
    let end = DateTime::<Utc>::from_timestamp(start + q.window_secs as i64, 0).unwrap_or(now);
    Admission::Refused {
        key: q.key.clone(),
        retry_after_secs: ceil_secs(end - now).max(1),
    }
}

fn ceil_secs(d: Duration) -> u64 {
    (d.num_milliseconds().max(0) as u64).div_ceil(1000)
}

impl MemoryLimits {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The first spent quota, as a refusal.
    fn spent(&self, quotas: &[Quota], now: DateTime<Utc>) -> Option<Admission> {
        let inner = self.lock();
        quotas.iter().find_map(|q| {
            let start = window_start(now, q.window_secs);
            let count = inner.counters.get(&(q.key.clone(), start)).map_or(0, |c| c.0);
            (count >= q.limit).then(|| refusal(q, start, now))
        })
    }

    /// The admission itself, under the limits lock: all quotas and the cooldown, or nothing.
    fn take(&self, quotas: &[Quota], cooldown: Option<&CooldownSpec>, now: DateTime<Utc>) -> Admission {
        let mut inner = self.lock();
        for q in quotas {
            let start = window_start(now, q.window_secs);
            let count = inner.counters.get(&(q.key.clone(), start)).map_or(0, |c| c.0);
            if count >= q.limit {
                return refusal(q, start, now);
            }
        }
        let mut resend_after_secs = None;
        if let Some(spec) = cooldown {
            let mut resends = 0;
            if let Some((last, n, until)) = inner.cooldowns.get(&spec.key) {
                if *until > now {
                    return Admission::Refused {
                        key: spec.key.clone(),
                        retry_after_secs: ceil_secs(*until - now).max(1),
                    };
                }
                if *last > now - Duration::seconds(spec.reset_secs as i64) {
                    resends = n + 1;
                }
            }
            let wait = cooldown_wait(spec, resends);
            inner
                .cooldowns
                .insert(spec.key.clone(), (now, resends, now + Duration::seconds(wait as i64)));
            resend_after_secs = Some(wait as u64);
        }
        for q in quotas {
            let start = window_start(now, q.window_secs);
            let expires = DateTime::<Utc>::from_timestamp(start + q.window_secs as i64, 0).unwrap_or(now);
            inner.counters.entry((q.key.clone(), start)).or_insert((0, expires)).0 += 1;
        }
        Admission::Admitted { resend_after_secs }
    }
}

#[async_trait]
impl LimitStore for super::MemoryStore {
    async fn admit_opening(
        &self,
        quotas: &[Quota],
        cooldown: Option<&CooldownSpec>,
        opening: Option<&Session>,
        now: DateTime<Utc>,
    ) -> Result<Admission, StoreError> {
        let admission = self.limits.take(quotas, cooldown, now);
        if let (Admission::Admitted { .. }, Some(session)) = (&admission, opening) {
            Store::insert_session(self, session).await?;
        }
        Ok(admission)
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
        let mut inner = self.limits.lock();
        let id = (scope.to_string(), key.to_string());
        if let Some(row) = inner.idempotency.get(&id) {
            let lease_over = row.answer.is_none() && row.claimed_at + Duration::seconds(lease_secs as i64) <= now;
            if row.expires_at > now && !lease_over {
                return Ok(if row.hash != hash {
                    IdempotencyClaim::Conflict
                } else if let Some((status, body)) = &row.answer {
                    IdempotencyClaim::Replay {
                        status: *status,
                        body: body.clone(),
                    }
                } else {
                    IdempotencyClaim::InFlight
                });
            }
        }
        let row = Idem {
            hash: hash.to_vec(),
            answer: None,
            claimed_at: now,
            expires_at: now + Duration::seconds(ttl_secs as i64),
        };
        inner.idempotency.insert(id, row);
        Ok(IdempotencyClaim::Claimed)
    }

    async fn complete_idempotency(&self, scope: &str, key: &str, status: u16, body: &serde_json::Value) -> Result<(), StoreError> {
        if let Some(row) = self.limits.lock().idempotency.get_mut(&(scope.to_string(), key.to_string())) {
            row.answer = Some((status, body.clone()));
        }
        Ok(())
    }

    async fn release_idempotency(&self, scope: &str, key: &str) -> Result<(), StoreError> {
        // Only an unanswered claim: a request whose lease ran out must not erase the answer of
        // the request that took its key over (PostgreSQL deletes `WHERE status IS NULL` too).
        let id = (scope.to_string(), key.to_string());
        let mut inner = self.limits.lock();
        if inner.idempotency.get(&id).is_some_and(|row| row.answer.is_none()) {
            inner.idempotency.remove(&id);
        }
        Ok(())
    }

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
            .spent(quotas, now)
            .unwrap_or(Admission::Admitted { resend_after_secs: None }))
    }

    async fn sweep(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut inner = self.limits.lock();
        let before = inner.counters.len() + inner.idempotency.len() + inner.cooldowns.len();
        inner.counters.retain(|_, (_, expires)| *expires > now);
        inner.idempotency.retain(|_, row| row.expires_at > now);
        inner.cooldowns.retain(|_, (_, _, until)| *until + Duration::days(1) > now);
        Ok((before - inner.counters.len() - inner.idempotency.len() - inner.cooldowns.len()) as u64)
    }
}
