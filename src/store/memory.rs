//! The in-memory store: zero set-up, nothing durable or shared between instances.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::Utc;
use uuid::Uuid;

use super::memory_limits::MemoryLimits;

use super::{AttemptRow, OtpEvent, SendLog, Session, SessionEdit, Store, StoreError};

/// Rows kept of each log before the oldest are dropped.
const LOG_CAP: usize = 100_000;

/// How long an expired session is kept (a late verify still finds it and hears `expired`).
fn kept_after_expiry() -> chrono::Duration {
    chrono::Duration::hours(1)
}

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    pub(super) limits: MemoryLimits,
    pub(super) campaigns: super::campaigns_memory::MemoryCampaigns,
}

#[derive(Default)]
pub(super) struct Inner {
    /// Boxed: a growing map moves only pointers when it rehashes, under the store's lock.
    pub(super) sessions: super::KeyMap<Uuid, Box<Session>>,
    /// Session ids in the order they were stored, each with when it may be forgotten.
    forget: VecDeque<(chrono::DateTime<Utc>, Uuid)>,
    pub(super) attempts: VecDeque<AttemptRow>,
    pub(super) events: VecDeque<OtpEvent>,
    /// Events ever written: the id of an event is its position in that sequence.
    events_written: u64,
    /// Delivery receipts by (provider, reference) (`store::receipts`).
    pub(super) receipts: HashMap<(String, String), super::receipts::Receipt>,
    /// Provider health's counts (`store::health`).
    pub(super) tallies: super::health::Tallies,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    /// Stores `session`, forgetting sessions expired an hour ago, oldest stored first.
    fn keep_session(&mut self, session: Box<Session>) {
        let now = Utc::now();
        // Sessions expired an hour ago are of no use to anyone: drop them, oldest stored first,
        // as new ones arrive (a few at a time, never a sweep of the whole map).
        while let Some(&(until, id)) = self.forget.front() {
            if until > now {
                break;
            }
            self.forget.pop_front();
            if self.sessions.get(&id).is_some_and(|s| s.expires_at + kept_after_expiry() <= now) {
                self.sessions.remove(&id);
                self.tallies.forget(&id);
            }
        }
        self.forget.push_back((session.expires_at + kept_after_expiry(), session.id));
        self.sessions.insert(session.id, session);
    }
}

impl MemoryStore {
    /// Reads the attempt and event logs, oldest first; events come with their ids.
    pub(super) fn with_logs<R>(&self, read: impl FnOnce(&VecDeque<AttemptRow>, &mut dyn Iterator<Item = (u64, &OtpEvent)>) -> R) -> R {
        let inner = self.lock();
        let first = inner.events_written - inner.events.len() as u64;
        let mut events = (first..).zip(inner.events.iter());
        read(&inner.attempts, &mut events)
    }
}

fn push_capped<T>(q: &mut VecDeque<T>, item: T) {
    if q.len() == LOG_CAP {
        q.pop_front();
    }
    q.push_back(item);
}

#[async_trait]
impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn insert_session(&self, session: &Session) -> Result<(), StoreError> {
        self.lock().keep_session(Box::new(session.clone()));
        Ok(())
    }

    async fn get_session(&self, id: Uuid) -> Result<Option<Session>, StoreError> {
        Ok(self.lock().sessions.get(&id).map(|s| Session::clone(s)))
    }

    async fn write_log(&self, log: SendLog) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let opened = log.opened.as_ref().map(|s| s.id);
        if let Some(opened) = log.opened {
            inner.keep_session(Box::new(opened));
        }
        if let Some(update) = log.session {
            if let Some(s) = inner.sessions.get_mut(&update.id) {
                update.apply(s);
            }
        }
        let inner = &mut *inner;
        for a in log.attempts.iter().filter(|a| a.outcome == "accepted") {
            if let Some(s) = a.session_id.and_then(|id| inner.sessions.get(&id)) {
                inner.tallies.carried(s, &a.provider, a.message_id == s.id, opened == Some(s.id));
            }
        }
        for mut a in log.attempts {
            // A receipt that arrived before its attempt row.
            if let Some(reference) = &a.provider_ref {
                let key = (a.provider.clone(), reference.clone());
                a.delivery = inner.receipts.get(&key).map(|r| r.delivery.clone()).or(a.delivery);
            }
            push_capped(&mut inner.attempts, a);
        }
        for e in log.events {
            push_capped(&mut inner.events, e);
            inner.events_written += 1;
        }
        Ok(())
    }

    async fn newest_session_holding(&self, phone: &str, provider: &str) -> Result<Option<Uuid>, StoreError> {
        Ok(self
            .lock()
            .sessions
            .values()
            .filter(|s| s.phone == phone && s.provider_refs.iter().any(|r| r.provider == provider))
            .max_by_key(|s| s.created_at)
            .map(|s| s.id))
    }

    async fn update_session(&self, id: Uuid, edit: SessionEdit<'_>) -> Result<Option<Session>, StoreError> {
        let mut inner = self.lock();
        let Some(stored) = inner.sessions.get_mut(&id) else {
            return Ok(None);
        };
        let mut session = Session::clone(stored);
        if edit(&mut session) {
            let was = std::mem::replace(&mut **stored, session.clone());
            inner.tallies.edited(&was, &session);
        }
        Ok(Some(session))
    }

    async fn recent_attempts(&self, limit: usize) -> Result<Vec<AttemptRow>, StoreError> {
        Ok(self.lock().attempts.iter().rev().take(limit).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SessionStatus;

    fn session(expires_at: chrono::DateTime<Utc>) -> Session {
        Session {
            id: Uuid::new_v4(),
            client: "app".into(),
            phone: "+919876543210".into(),
            user_id: None,
            purpose: "login".into(),
            code_hmac: vec![1; 32],
            provider_refs: Vec::new(),
            status: SessionStatus::Pending,
            attempts: 0,
            max_attempts: 5,
            created_at: expires_at - chrono::Duration::minutes(5),
            expires_at,
            verified_at: None,
            local_code_sent: false,
            verify_lease_until: None,
            verified_by: None,
        }
    }

    #[tokio::test]
    async fn sessions_an_hour_past_expiry_are_dropped_as_new_ones_arrive() {
        let store = MemoryStore::new();
        let now = Utc::now();
        let long_gone = session(now - chrono::Duration::minutes(61));
        let just_expired = session(now - chrono::Duration::minutes(59));
        let live = session(now + chrono::Duration::minutes(5));
        for s in [&long_gone, &just_expired, &live] {
            store.insert_session(s).await.unwrap();
        }
        assert_eq!(store.get_session(long_gone.id).await.unwrap(), None);
        assert!(
            store.get_session(just_expired.id).await.unwrap().is_some(),
            "kept an hour past expiry"
        );
        assert!(store.get_session(live.id).await.unwrap().is_some());
        assert_eq!(store.lock().forget.len(), 2);
    }
}
