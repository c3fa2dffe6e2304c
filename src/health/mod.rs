//! Provider health beyond HTTP: per provider and destination country, how many settled OTP
//! sessions were verified with the code it carried (conversion), what its delivery receipts
//! and synthetic probes say, and from those the `degraded` state the router orders by. It reads
//! counts the store derives from rows already written; it never sends anything. See DESIGN.md.

mod judge;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Duration as ChronoDuration, Utc};

pub use judge::{judge, Counts, Evidence, Reason, Standing, Verdict};

use crate::config::HealthSettings;
use crate::metrics::Metrics;
use crate::phone::calling_code_of;
use crate::store::{HealthStore, StoreError, TallyRow, TallyWindow};

/// Receipts kept per provider and country (the newest).
const RECEIPTS_KEPT: usize = 1_000;

/// (provider, country) → receipts (received at, delivered), newest last.
type Receipts = HashMap<(String, String), VecDeque<(DateTime<Utc>, bool)>>;

pub struct Health {
    settings: HealthSettings,
    metrics: Metrics,
    verdict: RwLock<Arc<Verdict>>,
    receipts: Mutex<Receipts>,
    /// (provider, country) → probes failed in a row.
    probes: Mutex<HashMap<(String, String), u32>>,
    /// OTPs per country routed while a provider there was degraded, for the probe share.
    shares: Mutex<HashMap<String, u64>>,
    last_refresh: Mutex<Option<DateTime<Utc>>>,
    /// How long after the last refresh the next may start: `refresh_seconds`, or longer when
    /// reading the counts took long (`REFRESH_SHARE`).
    refresh_gap: Mutex<ChronoDuration>,
    refreshing: AtomicBool,
    /// The baseline rows and when they were read: they change slowly and span hours, so they are
    /// read again only every `BASELINE_EVERY` refreshes, apart from the window.
    baseline: Mutex<Option<(DateTime<Utc>, Vec<TallyRow>)>>,
}

/// Refreshes between two reads of the baseline (with `refresh_seconds = 10`, five minutes).
const BASELINE_EVERY: u64 = 30;

/// The largest share of time an instance spends refreshing: a refresh that took `d` (from
/// `SLOW_REFRESH` on) is followed by the next no sooner than `d / REFRESH_SHARE` after it began.
/// A read takes the counts of its span, not its sessions, so it is quick however busy the
/// gateway; when the database is slow anyway, refreshes come less often instead of adding to it.
const REFRESH_SHARE: f64 = 0.1;

/// Refreshes quicker than this keep `refresh_seconds`, whatever the share.
const SLOW_REFRESH: std::time::Duration = std::time::Duration::from_secs(2);

impl Health {
    pub fn new(settings: HealthSettings, metrics: Metrics) -> Self {
        let refresh_gap = Mutex::new(secs(settings.refresh_seconds));
        Self {
            settings,
            metrics,
            verdict: RwLock::new(Arc::new(Verdict::new())),
            receipts: Mutex::default(),
            probes: Mutex::default(),
            shares: Mutex::default(),
            last_refresh: Mutex::new(None),
            refresh_gap,
            refreshing: AtomicBool::new(false),
            baseline: Mutex::new(None),
        }
    }

    pub fn settings(&self) -> &HealthSettings {
        &self.settings
    }

    /// A delivery receipt for an SMS `provider` carried to `country`.
    pub fn record_receipt(&self, provider: &str, country: &str, delivered: bool, at: DateTime<Utc>) {
        let mut receipts = lock(&self.receipts);
        let q = receipts.entry((provider.to_string(), country.to_string())).or_default();
        if q.len() == RECEIPTS_KEPT {
            q.pop_front();
        }
        q.push_back((at, delivered));
    }

    /// A synthetic probe through `provider` to `country` was accepted (`ok`) or failed.
    pub fn record_probe(&self, provider: &str, country: &str, ok: bool) {
        let mut probes = lock(&self.probes);
        let n = probes.entry((provider.to_string(), country.to_string())).or_default();
        *n = if ok { 0 } else { n.saturating_add(1) };
    }

    /// How `provider` stands for `country`, as of the last refresh.
    pub fn standing(&self, provider: &str, country: &str) -> Option<Standing> {
        self.verdict().get(&(provider.to_string(), country.to_string())).cloned()
    }

    pub fn verdict(&self) -> Arc<Verdict> {
        Arc::clone(&self.verdict.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The app-clock time of the last refresh.
    pub fn refreshed_at(&self) -> Option<DateTime<Utc>> {
        *lock(&self.last_refresh)
    }

    /// Whether `provider` is degraded for `country` (and health routing is on).
    pub fn is_degraded(&self, provider: &str, country: &str) -> bool {
        self.settings.enabled && self.standing(provider, country).is_some_and(|s| s.degraded())
    }

    /// `candidates` with the providers degraded for `country` after the healthy ones, order
    /// kept within each. With `share`, one OTP in `1 / probe_share` to the country goes first
    /// to a degraded provider (in turn), so its recovery shows in its conversion.
    pub fn order<T>(&self, candidates: Vec<T>, name: impl Fn(&T) -> &str, country: &str, share: bool) -> Vec<T> {
        let (mut healthy, mut degraded): (Vec<T>, Vec<T>) = candidates.into_iter().partition(|c| !self.is_degraded(name(c), country));
        if degraded.is_empty() {
            return healthy;
        }
        if share && self.settings.probe_share > 0.0 && !healthy.is_empty() {
            let period = (1.0 / self.settings.probe_share).round().max(1.0) as u64;
            let n = {
                let mut shares = lock(&self.shares);
                let n = shares.entry(country.to_string()).or_default();
                *n += 1;
                *n
            };
            if n % period == 0 {
                let turn = ((n / period) as usize - 1) % degraded.len();
                let first = degraded.remove(turn);
                healthy.insert(0, first);
            }
        }
        healthy.append(&mut degraded);
        healthy
    }

    /// Whether a refresh is due at `now` and none is running; if so the caller runs it.
    pub fn claim_refresh(&self, now: DateTime<Utc>) -> bool {
        let gap = *lock(&self.refresh_gap);
        let due = lock(&self.last_refresh).is_none_or(|last| now - last >= gap);
        due && !self.refreshing.swap(true, Ordering::AcqRel)
    }

    /// Takes the counts again from `store` and judges every provider. Runs after
    /// `claim_refresh` said so (it releases the claim) or on its own (tests, a ticker).
    pub async fn refresh(&self, store: &dyn HealthStore, now: DateTime<Utc>) -> Result<(), StoreError> {
        let began = std::time::Instant::now();
        let result = self.refresh_inner(store, now).await;
        let took = began.elapsed();
        self.metrics.health_refresh_seconds.set(took.as_secs_f64());
        if result.is_err() {
            self.metrics.health_refresh_failures.inc();
        }
        *lock(&self.refresh_gap) = refresh_gap(self.settings.refresh_seconds, took);
        *lock(&self.last_refresh) = Some(now);
        self.refreshing.store(false, Ordering::Release);
        result
    }

    async fn refresh_inner(&self, store: &dyn HealthStore, now: DateTime<Utc>) -> Result<(), StoreError> {
        let s = &self.settings;
        let window_from = now - secs(s.window_seconds);
        let window = TallyWindow {
            baseline_from: window_from,
            window_from,
            settled_before: now - secs(s.settle_seconds),
            created_before: None,
        };
        let mut rows = store.conversion_tally(window).await?;
        rows.extend(self.baseline_rows(store, window, now).await);
        let mut evidence: BTreeMap<(String, String), Evidence> = BTreeMap::new();
        for r in rows {
            let Some(country) = calling_code_of(&r.prefix) else { continue };
            let e = evidence.entry((r.provider, country.to_string())).or_default();
            let counts = if r.recent { &mut e.window } else { &mut e.baseline };
            counts.add(r.sent, r.verified, r.delay_secs);
        }
        for (key, q) in lock(&self.receipts).iter() {
            let e = evidence.entry(key.clone()).or_default();
            for (_, delivered) in q.iter().filter(|(at, _)| *at >= window.window_from) {
                if *delivered {
                    e.receipts_delivered += 1;
                } else {
                    e.receipts_failed += 1;
                }
            }
        }
        for (key, failures) in lock(&self.probes).iter() {
            evidence.entry(key.clone()).or_default().probe_failures_in_row = *failures;
        }
        let previous = self.verdict();
        let verdict = judge(&evidence, &previous, s);
        for ((provider, country), standing) in &verdict {
            let was = previous.get(&(provider.clone(), country.clone())).map(|p| p.state);
            if standing.degraded() && was != Some("degraded") {
                tracing::warn!(provider = %provider, country = %country, reason = ?standing.reason, conversion = ?standing.conversion,
                    best_peer = ?standing.best_peer_conversion, sessions = standing.sessions, "provider degraded for this country");
            } else if !standing.degraded() && was == Some("degraded") {
                tracing::info!(provider = %provider, country = %country, conversion = ?standing.conversion, "provider recovered for this country");
            }
        }
        self.publish(&verdict);
        *self.verdict.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(verdict);
        Ok(())
    }

    /// The baseline rows, read again when due; a failed read keeps the last ones (the window
    /// alone still judges against peers).
    async fn baseline_rows(&self, store: &dyn HealthStore, window: TallyWindow, now: DateTime<Utc>) -> Vec<TallyRow> {
        let s = &self.settings;
        let cached = lock(&self.baseline).clone();
        let every = secs(s.refresh_seconds.saturating_mul(BASELINE_EVERY));
        if let Some((at, rows)) = &cached {
            if now - *at < every && *at <= now {
                return rows.clone();
            }
        }
        // Only what is older than the window: every refresh reads the window itself.
        let asked = TallyWindow {
            baseline_from: now - secs(s.baseline_seconds),
            created_before: Some(window.window_from),
            ..window
        };
        match store.conversion_tally(asked).await {
            Ok(rows) => {
                let rows: Vec<TallyRow> = rows.into_iter().filter(|r| !r.recent).collect();
                *lock(&self.baseline) = Some((now, rows.clone()));
                rows
            }
            Err(e) => {
                tracing::warn!(error = ?e, "reading the providers' conversion baseline failed; keeping the last one");
                cached.map(|(_, rows)| rows).unwrap_or_default()
            }
        }
    }

    fn publish(&self, verdict: &Verdict) {
        self.metrics.provider_conversion.reset();
        self.metrics.provider_degraded.reset();
        for ((provider, country), s) in verdict {
            if let Some(c) = s.conversion {
                self.metrics.provider_conversion.with_label_values(&[provider, country]).set(c);
            }
            let reason = s.reason.map_or("none", Reason::as_str);
            self.metrics
                .provider_degraded
                .with_label_values(&[provider, country, reason])
                .set(i64::from(s.degraded()));
        }
    }
}

/// The wait after a refresh that took `took`: `refresh_seconds`, or for a slow one long enough
/// that refreshing takes at most `REFRESH_SHARE` of the time.
fn refresh_gap(refresh_seconds: u64, took: std::time::Duration) -> ChronoDuration {
    if took < SLOW_REFRESH {
        return secs(refresh_seconds);
    }
    let share = ChronoDuration::milliseconds((took.as_secs_f64() / REFRESH_SHARE * 1000.0).min(86_400_000.0) as i64);
    secs(refresh_seconds).max(share)
}

fn secs(s: u64) -> ChronoDuration {
    ChronoDuration::seconds(s.min(i64::MAX as u64 / 1000) as i64)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs refreshes for `health` from `store`: every `refresh_seconds`, and whenever a send finds
/// one due on the app's clock (`Gateway::health_tick`).
pub fn spawn_refresher(health: Arc<Health>, store: Arc<dyn crate::store::Store>, clock: crate::clock::Clock) {
    let every = std::time::Duration::from_secs(health.settings.refresh_seconds);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let now = clock.now();
            if health.claim_refresh(now) {
                if let Err(e) = health.refresh(&*store, now).await {
                    tracing::warn!(error = ?e, "refreshing provider health failed");
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn degraded_health(probe_share: f64) -> Health {
        let settings = HealthSettings {
            probe_share,
            ..HealthSettings::default()
        };
        let health = Health::new(settings, Metrics::new());
        let standing = Standing {
            state: "degraded",
            reason: Some(Reason::BelowPeers),
            sessions: 40,
            verified: 0,
            conversion: Some(0.0),
            baseline_conversion: None,
            best_peer_conversion: Some(1.0),
            verify_delay_seconds: None,
            receipts_delivered: 0,
            receipts_failed: 0,
            probe_failures_in_row: 0,
        };
        let verdict = Verdict::from([(("2factor".to_string(), "91".to_string()), standing)]);
        *health.verdict.write().unwrap() = Arc::new(verdict);
        health
    }

    #[test]
    fn a_degraded_provider_goes_last_but_keeps_the_probe_share() {
        let health = degraded_health(0.05);
        let order = |share| health.order(vec!["2factor", "twilio"], |s| s, "91", share);
        let firsts: Vec<&str> = (0..100).map(|_| order(true)[0]).collect();
        assert_eq!(firsts.iter().filter(|p| **p == "2factor").count(), 5);
        assert_eq!(order(false), vec!["twilio", "2factor"]);
        assert_eq!(
            health.order(vec!["2factor", "twilio"], |s| s, "44", true),
            vec!["2factor", "twilio"],
            "another country"
        );
        let none = degraded_health(0.0);
        assert!((0..100).all(|_| none.order(vec!["2factor", "twilio"], |s| s, "91", true)[0] == "twilio"));
    }

    /// Answers every tally with fixed rows, keeping the windows it was asked for.
    struct Fixed {
        rows: Vec<TallyRow>,
        asked: Mutex<Vec<TallyWindow>>,
    }

    #[async_trait::async_trait]
    impl HealthStore for Fixed {
        async fn conversion_tally(&self, window: TallyWindow) -> Result<Vec<TallyRow>, StoreError> {
            lock(&self.asked).push(window);
            Ok(self
                .rows
                .iter()
                .filter(|r| r.recent || window.baseline_from < window.window_from)
                .cloned()
                .collect())
        }
        async fn session_attempts(&self, _: uuid::Uuid) -> Result<Vec<crate::store::AttemptRow>, StoreError> {
            Ok(Vec::new())
        }
    }

    #[tokio::test]
    async fn the_baseline_is_read_now_and_then_and_kept_in_between() {
        let row = |recent, sent, verified| TallyRow {
            provider: "2factor".into(),
            prefix: "+9198".into(),
            recent,
            sent,
            verified,
            delay_secs: 0.0,
        };
        let store = Fixed {
            rows: vec![row(true, 30, 3), row(false, 200, 180)],
            asked: Mutex::default(),
        };
        let health = Health::new(HealthSettings::default(), Metrics::new());
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        for step in 0..3 {
            let now = t0 + ChronoDuration::seconds(10 * step);
            health.refresh(&store, now).await.unwrap();
            let standing = health.standing("2factor", "91").unwrap();
            assert_eq!(standing.reason, Some(Reason::BelowBaseline), "refresh {step}");
            assert_eq!(standing.baseline_conversion, Some(0.9));
        }
        let asked = lock(&store.asked);
        let baseline_reads: Vec<&TallyWindow> = asked.iter().filter(|w| w.baseline_from < w.window_from).collect();
        assert_eq!(
            (asked.len(), baseline_reads.len()),
            (4, 1),
            "every refresh reads the window, the first also the baseline"
        );
        assert_eq!(
            baseline_reads[0].created_before,
            Some(baseline_reads[0].window_from),
            "the baseline read leaves the window out"
        );
        assert!(asked
            .iter()
            .filter(|w| w.baseline_from == w.window_from)
            .all(|w| w.created_before.is_none()));
    }

    #[test]
    fn a_slow_refresh_spaces_out_the_next_ones() {
        let ms = std::time::Duration::from_millis;
        assert_eq!(
            refresh_gap(10, ms(80)),
            ChronoDuration::seconds(10),
            "a quick read keeps the period"
        );
        assert_eq!(
            refresh_gap(10, ms(1_900)),
            ChronoDuration::seconds(10),
            "so does one under SLOW_REFRESH"
        );
        assert_eq!(
            refresh_gap(10, ms(2_500)),
            ChronoDuration::seconds(25),
            "a read of 2.5 s: at most a tenth of the time"
        );
        let health = Health::new(HealthSettings::default(), Metrics::new());
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert!(health.claim_refresh(t0));
        *lock(&health.refresh_gap) = refresh_gap(10, ms(3_000));
        *lock(&health.last_refresh) = Some(t0);
        health.refreshing.store(false, Ordering::Release);
        assert!(!health.claim_refresh(t0 + ChronoDuration::seconds(10)));
        assert!(!health.claim_refresh(t0 + ChronoDuration::seconds(29)));
        assert!(health.claim_refresh(t0 + ChronoDuration::seconds(30)));
    }

    #[tokio::test]
    async fn a_failed_refresh_is_counted_and_its_time_is_shown() {
        struct Failing;
        #[async_trait::async_trait]
        impl HealthStore for Failing {
            async fn conversion_tally(&self, _: TallyWindow) -> Result<Vec<TallyRow>, StoreError> {
                Err(StoreError::Timeout(std::time::Duration::from_secs(60)))
            }
            async fn session_attempts(&self, _: uuid::Uuid) -> Result<Vec<crate::store::AttemptRow>, StoreError> {
                Ok(Vec::new())
            }
        }
        let metrics = Metrics::new();
        let health = Health::new(HealthSettings::default(), metrics.clone());
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert!(health.refresh(&Failing, t0).await.is_err());
        assert_eq!(metrics.health_refresh_failures.get(), 1);
        assert!(metrics.render().contains("smsgate_health_refresh_seconds "));
        assert!(
            health.claim_refresh(t0 + ChronoDuration::seconds(10)),
            "a failure does not stop the next refresh"
        );
    }

    #[test]
    fn probes_failing_in_a_row_are_counted_and_a_success_resets_them() {
        let health = Health::new(HealthSettings::default(), Metrics::new());
        for ok in [false, false, true, false] {
            health.record_probe("2factor", "91", ok);
        }
        assert_eq!(lock(&health.probes)[&("2factor".to_string(), "91".to_string())], 1);
    }
}
