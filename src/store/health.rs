//! What provider health and resends read from what the send and verify paths wrote: conversion
//! counts per provider and destination prefix, and the SMS of one session. The same counts on
//! both stores, kept as sessions are written and verified: in `provider_tallies` on PostgreSQL
//! (shared by every instance), in `Tallies` in memory.

use std::collections::BTreeMap;

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

/// What a session's verification adds to health's counts: whether, by whose code and when. An
/// edit that leaves it alone leaves the counts alone.
#[derive(PartialEq)]
pub(super) struct Verification {
    pub(super) verified: bool,
    pub(super) by: Option<String>,
    pub(super) at: Option<DateTime<Utc>>,
}

impl Verification {
    pub(super) fn of(s: &Session) -> Self {
        Self {
            verified: s.status == SessionStatus::Verified,
            by: s.verified_by.clone(),
            at: s.verified_at,
        }
    }
}

/// Health's counts on the memory store, kept as PostgreSQL keeps `provider_tallies` (migration
/// 0016): per ten seconds of opening, provider and prefix, added to as sessions are written and
/// verified, so a refresh reads them and not the sessions.
#[derive(Default)]
pub(super) struct Tallies {
    counts: BTreeMap<(DateTime<Utc>, String, String), Counts>,
    /// The providers that took an SMS of each kept session, each with whether it took the first.
    carriers: KeyMap<Uuid, Vec<(String, bool)>>,
}

#[derive(Default, Clone, Copy)]
struct Counts {
    sent: u64,
    sent_verified: u64,
    verified: i64,
    delay_secs: f64,
}

/// Counts this long after their ten seconds are dropped: a day holds the default six-hour baseline.
const TALLIES_KEPT: chrono::TimeDelta = chrono::TimeDelta::days(1);

impl Tallies {
    /// `provider` took an SMS of `s` (its first when `first`); `opened` when `s` was stored with
    /// it. A session counts once per provider; as on PostgreSQL, a verified session is credited
    /// when stored with its first SMS, else by its verification.
    pub(super) fn carried(&mut self, s: &Session, provider: &str, first: bool, opened: bool) {
        let carriers = self.carriers.entry(s.id).or_default();
        if carriers.iter().any(|(p, _)| p == provider) {
            return;
        }
        carriers.push((provider.to_string(), first));
        let verified = s.status == SessionStatus::Verified;
        let n = self.at(s, provider);
        n.sent += 1;
        n.sent_verified += u64::from(verified);
        n.verified += i64::from(verified && first && opened);
        let oldest = period(s.created_at) - TALLIES_KEPT;
        while self.counts.first_key_value().is_some_and(|(k, _)| k.0 < oldest) {
            self.counts.pop_first();
        }
    }

    /// `s` was edited from `was`: what its verification adds moves by the difference.
    pub(super) fn edited(&mut self, was: &Session, s: &Session) {
        if Verification::of(was) == Verification::of(s) {
            return;
        }
        let credit = |s: &Session, provider: &str, first: bool| {
            let verified = s.status == SessionStatus::Verified;
            let credited = verified && s.verified_by.as_deref().map_or(first, |by| by == provider);
            let delay = s
                .verified_at
                .filter(|_| credited)
                .map_or(0.0, |at| (at - s.created_at).num_milliseconds() as f64 / 1000.0);
            (u64::from(verified), i64::from(credited), delay)
        };
        let Some(carriers) = self.carriers.get(&s.id).cloned() else {
            return;
        };
        for (provider, first) in carriers {
            let (v0, c0, d0) = credit(was, &provider, first);
            let (v1, c1, d1) = credit(s, &provider, first);
            let n = self.at(s, &provider);
            n.sent_verified = (n.sent_verified + v1).saturating_sub(v0);
            n.verified += c1 - c0;
            n.delay_secs += d1 - d0;
        }
    }

    /// A session forgotten by the store: its counts stay.
    pub(super) fn forget(&mut self, id: &Uuid) {
        self.carriers.remove(id);
    }

    fn at(&mut self, s: &Session, provider: &str) -> &mut Counts {
        self.counts
            .entry((period(s.created_at), provider.to_string(), prefix(&s.phone).to_string()))
            .or_default()
    }
}

#[async_trait]
impl HealthStore for MemoryStore {
    async fn conversion_tally(&self, w: TallyWindow) -> Result<Vec<TallyRow>, StoreError> {
        let inner = self.lock();
        let (window_from, settled_before) = (period(w.window_from), period(w.settled_before));
        let from = period(w.baseline_from);
        let range = match w.created_before.map(period) {
            Some(before) if before <= from => return Ok(Vec::new()),
            Some(before) => inner
                .tallies
                .counts
                .range((from, String::new(), String::new())..(before, String::new(), String::new())),
            None => inner.tallies.counts.range((from, String::new(), String::new())..),
        };
        // (provider, prefix, recent) → (sent, verified, delay).
        let mut out: BTreeMap<(&str, &str, bool), (u64, i64, f64)> = BTreeMap::new();
        for ((opened, provider, prefix), n) in range {
            let sum = out.entry((provider, prefix, *opened >= window_from)).or_default();
            sum.0 += if *opened < settled_before { n.sent } else { n.sent_verified };
            sum.1 += n.verified;
            sum.2 += n.delay_secs;
        }
        Ok(out
            .into_iter()
            .filter(|(_, (sent, _, _))| *sent > 0)
            .map(|((provider, prefix, recent), (sent, verified, delay_secs))| TallyRow {
                provider: provider.to_string(),
                prefix: prefix.to_string(),
                recent,
                sent,
                verified: verified.max(0) as u64,
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
