//! What provider health and resends read from rows the send and verify paths already wrote:
//! conversion counts per provider and destination prefix, and the SMS of one session. The same
//! derivation on both stores: SQL on PostgreSQL (one aggregate, shared by every instance), a scan
//! of the kept rows in memory.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::postgres::{attempt_from_row, ATTEMPT_COLUMNS};
use super::{AttemptRow, KeyMap, MemoryStore, PostgresStore, Session, SessionStatus, StoreError};

/// Which sessions a tally reads: created since `baseline_from` (and before `created_before`,
/// when given); those created since `window_from` are the current window; a pending session
/// counts only when created before `settled_before` (old enough that its user would have typed
/// the code).
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

#[async_trait]
pub trait HealthStore: Send + Sync {
    /// Conversion counts of the sessions `window` selects.
    async fn conversion_tally(&self, window: TallyWindow) -> Result<Vec<TallyRow>, StoreError>;
    /// Every provider attempt of `session`, oldest first.
    async fn session_attempts(&self, session: Uuid) -> Result<Vec<AttemptRow>, StoreError>;
}

/// How long a read of the counts may take. Each reads every session of its span, and only the
/// sessions: each row carries the providers that took its SMS and whose code verified it
/// (migration 0015). Joined to the attempts and verify events, a window of 780,000 sessions (ten
/// minutes at 1,300 OTP/s) took 2.2 s, past the statement limit meant for sends, and 207,000
/// took 0.68-0.74 s; the sessions alone 0.15-0.17 s. The baseline (hours) reads more.
const TALLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

const TALLY_SQL: &str = r#"
SELECT p.provider, left(s.phone, 5), s.created_at >= $2, count(*)::int8,
       (count(*) FILTER (WHERE s.status = 'verified'
                           AND coalesce(s.verified_by = p.provider, p.provider = s.first_carrier)))::int8,
       coalesce(sum(coalesce(extract(epoch FROM s.verified_at - s.created_at)::float8, 0))
                    FILTER (WHERE s.status = 'verified'
                              AND coalesce(s.verified_by = p.provider, p.provider = s.first_carrier)), 0)::float8
  FROM sms_otp_sessions AS s, unnest(s.carriers) AS p(provider)
 WHERE s.created_at >= $1 AND ($4::timestamptz IS NULL OR s.created_at < $4)
   AND (s.status = 'verified' OR s.created_at < $3)
 GROUP BY 1, 2, 3"#;

#[async_trait]
impl HealthStore for PostgresStore {
    async fn conversion_tally(&self, w: TallyWindow) -> Result<Vec<TallyRow>, StoreError> {
        // Background reads, off the send path, under a limit of their own rather than the
        // statement limit meant for sends.
        let call = async move {
            let mut client = self.pool().get().await?;
            let tx = client.transaction().await?;
            // JIT-compiling this aggregate costs more than it saves (seconds, when it joined the
            // attempts). Parallel workers would take every core for a background count and
            // finish no sooner (2.17-2.34 s against 2.16-2.30 s serial for the joined read).
            tx.batch_execute(&format!(
                "SET LOCAL jit = off; SET LOCAL max_parallel_workers_per_gather = 0; SET LOCAL statement_timeout = {}",
                TALLY_TIMEOUT.as_millis()
            ))
            .await?;
            let rows = tx
                .query(TALLY_SQL, &[&w.baseline_from, &w.window_from, &w.settled_before, &w.created_before])
                .await?;
            tx.commit().await?;
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
        };
        let limit = TALLY_TIMEOUT + std::time::Duration::from_secs(5);
        tokio::time::timeout(limit, call).await.map_err(|_| StoreError::Timeout(limit))?
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
        let counted = |s: &Session| {
            let verified = s.status == SessionStatus::Verified;
            s.created_at >= w.baseline_from
                && w.created_before.is_none_or(|before| s.created_at < before)
                && (verified || s.created_at < w.settled_before)
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
            let prefix = s.phone.char_indices().nth(5).map_or(s.phone.as_str(), |(end, _)| &s.phone[..end]);
            let counts = out.entry((provider, prefix, s.created_at >= w.window_from)).or_default();
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
