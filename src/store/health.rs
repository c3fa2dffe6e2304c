//! What provider health and resends read from rows the send and verify paths already wrote:
//! conversion counts per provider and destination prefix, and the SMS of one session. The same
//! derivation on both stores: SQL on PostgreSQL (one aggregate, shared by every instance), a scan
//! of the kept rows in memory.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::postgres::{attempt_from_row, ATTEMPT_COLUMNS};
use super::{AttemptRow, KeyMap, MemoryStore, PostgresStore, Session, SessionStatus, StoreError};

/// Which sessions a tally reads, by the ten seconds each was opened in (`period`; every bound is
/// taken down to its ten seconds too): opened since `baseline_from` (and before `created_before`,
/// when given); those opened since `window_from` are the current window; a session not verified
/// counts only when opened in ten seconds wholly before `settled_before` (old enough that its
/// user would have typed the code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TallyWindow {
    pub baseline_from: DateTime<Utc>,
    pub window_from: DateTime<Utc>,
    pub settled_before: DateTime<Utc>,
    pub created_before: Option<DateTime<Utc>>,
}

/// Settled sessions one provider carried to one destination prefix (`+` and up to four
/// digits: enough to know the country), in the window (`recent`) or the baseline before it.
#[derive(Debug, Clone, PartialEq)]
pub struct TallyRow {
    pub provider: String,
    pub prefix: String,
    pub recent: bool,
    pub sent: u64,
    /// Sessions verified with a code this provider carried (with the code of the first SMS when
    /// the verification did not say whose code it was).
    pub verified: u64,
    /// Seconds from session to verification, summed over `verified`.
    pub delay_secs: f64,
}

/// The start of the ten seconds (since the Unix epoch) `at` falls in: sessions are counted by it,
/// and a tally's bounds are taken down to it (`TallyWindow`). PostgreSQL's counts are kept per
/// ten seconds (migration 0016), `date_bin('10 seconds', at, 'epoch')`.
pub(super) fn period(at: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::DurationRound;
    at.duration_trunc(chrono::Duration::seconds(10)).unwrap_or(at)
}

/// The destination prefix sessions are counted by: `+` and four digits, enough to know the
/// country (PostgreSQL's `left(phone, 5)`).
pub(super) fn prefix(phone: &str) -> &str {
    phone.char_indices().nth(5).map_or(phone, |(end, _)| &phone[..end])
}

#[async_trait]
pub trait HealthStore: Send + Sync {
    /// Conversion counts of the sessions `window` selects.
    async fn conversion_tally(&self, window: TallyWindow) -> Result<Vec<TallyRow>, StoreError>;
    /// Every provider attempt of `session`, oldest first.
    async fn session_attempts(&self, session: Uuid) -> Result<Vec<AttemptRow>, StoreError>;
}

/// The counts the send and verify paths write per ten seconds (migration 0016), summed over their
/// writers: at most one row per ten seconds, provider, prefix and writing connection is read,
/// however many sessions there were. Ten seconds not wholly settled count only their verified
/// sessions as sent (`TallyWindow`).
const TALLY_SQL: &str = r#"
SELECT provider, prefix, opened >= date_bin('10 seconds', $2::timestamptz, 'epoch'),
       sum(CASE WHEN opened < date_bin('10 seconds', $3::timestamptz, 'epoch') THEN sent ELSE sent_verified END)::int8,
       sum(verified)::int8, sum(delay_secs)::float8
  FROM provider_tallies
 WHERE opened >= date_bin('10 seconds', $1::timestamptz, 'epoch')
   AND ($4::timestamptz IS NULL OR opened < date_bin('10 seconds', $4::timestamptz, 'epoch'))
 GROUP BY 1, 2, 3
HAVING sum(CASE WHEN opened < date_bin('10 seconds', $3::timestamptz, 'epoch') THEN sent ELSE sent_verified END) > 0"#;

#[async_trait]
impl HealthStore for PostgresStore {
    async fn conversion_tally(&self, w: TallyWindow) -> Result<Vec<TallyRow>, StoreError> {
        self.bounded(async move {
            let client = self.pool().get().await?;
            let stmt = client.prepare_cached(TALLY_SQL).await?;
            let rows = client
                .query(&stmt, &[&w.baseline_from, &w.window_from, &w.settled_before, &w.created_before])
                .await?;
            Ok(rows
                .iter()
                .map(|r| TallyRow {
                    provider: r.get(0),
                    prefix: r.get(1),
                    recent: r.get(2),
                    sent: r.get::<_, i64>(3).max(0) as u64,
                    verified: r.get::<_, i64>(4).max(0) as u64,
                    delay_secs: r.get(5),
                })
                .collect())
        })
        .await
    }

    async fn session_attempts(&self, session: Uuid) -> Result<Vec<AttemptRow>, StoreError> {
        self.bounded(async move {
            let client = self.pool().get().await?;
            let rows = client
                .query(
                    &format!("SELECT {ATTEMPT_COLUMNS} FROM sms_messages_log WHERE session_id = $1 ORDER BY created_at"),
                    &[&session],
                )
                .await?;
            Ok(rows.iter().map(attempt_from_row).collect())
        })
        .await
    }
}

#[async_trait]
impl HealthStore for MemoryStore {
    async fn conversion_tally(&self, w: TallyWindow) -> Result<Vec<TallyRow>, StoreError> {
        let inner = self.lock();
        // Sessions are judged by when they were opened; an attempt's own time is the router's
        // wall clock, not the gateway's. Only sessions the window counts are gathered: the store
        // lock is held throughout, and most of a busy log is sessions still settling.
        let (from, window_from, settled_before) = (period(w.baseline_from), period(w.window_from), period(w.settled_before));
        let before = w.created_before.map(period);
        let counted = |s: &Session| {
            let opened = period(s.created_at);
            opened >= from
                && before.is_none_or(|before| opened < before)
                && (s.status == SessionStatus::Verified || opened < settled_before)
        };
        // (session, provider) → whether it carried the session's first SMS.
        let mut carried: KeyMap<(Uuid, &str), bool> = KeyMap::with_capacity_and_hasher(inner.attempts.len(), Default::default());
        for a in inner.attempts.iter().filter(|a| a.outcome == "accepted") {
            if let Some(sid) = a.session_id.filter(|sid| inner.sessions.get(sid).is_some_and(|s| counted(s))) {
                *carried.entry((sid, a.provider.as_str())).or_default() |= a.message_id == sid;
            }
        }
        // (provider, prefix, recent) → (sent, verified, delay), borrowed from the store's rows
        // while its lock is held; owned rows are made once per group at the end.
        let mut out: KeyMap<(&str, &str, bool), (u64, u64, f64)> = KeyMap::default();
        for ((sid, provider), original) in carried {
            let Some(s) = inner.sessions.get(&sid) else { continue };
            let verified = s.status == SessionStatus::Verified;
            let credited = verified
                && match s.verified_by.as_deref() {
                    Some(by) => by == provider,
                    None => original,
                };
            let counts = out
                .entry((provider, prefix(&s.phone), period(s.created_at) >= window_from))
                .or_default();
            counts.0 += 1;
            if credited {
                counts.1 += 1;
                counts.2 += s
                    .verified_at
                    .map_or(0.0, |at| (at - s.created_at).num_milliseconds() as f64 / 1000.0);
            }
        }
        Ok(out
            .into_iter()
            .map(|((provider, prefix, recent), (sent, verified, delay_secs))| TallyRow {
                provider: provider.to_string(),
                prefix: prefix.to_string(),
                recent,
                sent,
                verified,
                delay_secs,
            })
            .collect())
    }

    async fn session_attempts(&self, session: Uuid) -> Result<Vec<AttemptRow>, StoreError> {
        Ok(self
            .lock()
            .attempts
            .iter()
            .filter(|a| a.session_id == Some(session))
            .cloned()
            .collect())
    }
}
