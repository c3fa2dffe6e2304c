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

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    pub(super) limits: MemoryLimits,
    pub(super) campaigns: super::campaigns_memory::MemoryCampaigns,
}

#[derive(Default)]
pub(super) struct Inner {
    pub(super) sessions: HashMap<Uuid, Session>,
    pub(super) attempts: VecDeque<AttemptRow>,
    pub(super) events: VecDeque<OtpEvent>,
    /// Events ever written: the id of an event is its position in that sequence.
    events_written: u64,
    /// Delivery receipts by (provider, reference) (`store::receipts`).
    pub(super) receipts: HashMap<(String, String), super::receipts::Receipt>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
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
        let mut inner = self.lock();
        let now = Utc::now();
        // Expired sessions are of no use to anyone; drop them as new ones arrive.
        if inner.sessions.len().is_multiple_of(1024) {
            inner.sessions.retain(|_, s| s.expires_at + chrono::Duration::hours(1) > now);
        }
        inner.sessions.insert(session.id, session.clone());
        Ok(())
    }

    async fn get_session(&self, id: Uuid) -> Result<Option<Session>, StoreError> {
        Ok(self.lock().sessions.get(&id).cloned())
    }

    async fn write_log(&self, log: SendLog) -> Result<(), StoreError> {
        if let Some(opened) = &log.opened {
            self.insert_session(opened).await?;
        }
        let mut inner = self.lock();
        if let Some(update) = log.session {
            if let Some(s) = inner.sessions.get_mut(&update.id) {
                update.apply(s);
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
        let mut session = stored.clone();
        if edit(&mut session) {
            *stored = session.clone();
        }
        Ok(Some(session))
    }

    async fn recent_attempts(&self, limit: usize) -> Result<Vec<AttemptRow>, StoreError> {
        Ok(self.lock().attempts.iter().rev().take(limit).cloned().collect())
    }
}
