//! The admission rules both stores apply: sliding windows and the resend cooldown, decided over
//! a `Ledger` of counters. The memory store keeps one ledger for its life; PostgreSQL loads the
//! rows a batch of admissions touches into a fresh ledger, decides the batch in order, and
//! writes back what changed. One implementation, so both stores agree by construction.
//!
//! A window of `W` seconds is kept as buckets of `W / 60` seconds (at least one), each with its
//! count and the time of its latest admission. An admission at `now` counts every bucket whose
//! latest admission lies in `(now - W, now]`, so every admission of any span of length `W`
//! ending at it is counted: no span of the window's length ever admits more than the limit.
//! The price, when admissions of one bucket are spread over it, is that they all count until
//! the latest of them leaves the window (at most 1/60 of the window late); admissions made at
//! one instant free exactly `W` later.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};

use super::{cooldown_wait, Admission, CooldownSpec, KeyMap, Quota};

/// Buckets per window.
const BUCKETS: u32 = 60;

/// The bucket length of a window, in milliseconds.
pub(super) fn bucket_ms(window_secs: u32) -> i64 {
    i64::from(window_secs.max(1).div_ceil(BUCKETS)) * 1000
}

pub(super) fn window_ms(window_secs: u32) -> i64 {
    i64::from(window_secs.max(1)) * 1000
}

/// The start of the bucket holding `now_ms`.
pub(super) fn bucket_start(now_ms: i64, window_secs: u32) -> i64 {
    let b = bucket_ms(window_secs);
    now_ms.div_euclid(b) * b
}

/// One bucket: how many admissions, and the latest one's time in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Bucket {
    pub count: u32,
    pub last_ms: i64,
}

/// A resend cooldown's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cooldown {
    pub last_sent: DateTime<Utc>,
    pub resends: i32,
    pub until: DateTime<Utc>,
}

/// Keys spread over 64 maps. The memory store's ledger holds two counters per phone for a day
/// (millions of keys under load), and a map that outgrows its capacity rehashes every key while
/// the store's lock is held: spread out, each growth moves a sixty-fourth of them.
struct Shards<V> {
    maps: Vec<KeyMap<String, V>>,
    spread: foldhash::quality::RandomState,
}

impl<V> Default for Shards<V> {
    fn default() -> Self {
        Self {
            maps: (0..64).map(|_| KeyMap::default()).collect(),
            spread: foldhash::quality::RandomState::default(),
        }
    }
}

impl<V> Shards<V> {
    fn of(&self, key: &str) -> usize {
        use std::hash::BuildHasher;
        (self.spread.hash_one(key) % self.maps.len() as u64) as usize
    }

    fn get(&self, key: &str) -> Option<&V> {
        self.maps[self.of(key)].get(key)
    }

    fn get_or_insert_with(&mut self, key: &str, make: impl FnOnce() -> V) -> &mut V {
        let i = self.of(key);
        let map = &mut self.maps[i];
        if !map.contains_key(key) {
            map.insert(key.to_string(), make());
        }
        map.get_mut(key).expect("inserted above")
    }

    fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.maps.iter_mut().flat_map(KeyMap::values_mut)
    }

    fn retain(&mut self, mut keep: impl FnMut(&mut V) -> bool) {
        for map in &mut self.maps {
            map.retain(|_, v| keep(v));
        }
    }
}

/// Counters (key → bucket start in ms → count) and cooldowns; with `track`, what changed.
#[derive(Default)]
pub(super) struct Ledger {
    /// key → (its window, bucket start in ms → bucket).
    counters: Shards<(u32, BTreeMap<i64, Bucket>)>,
    cooldowns: KeyMap<String, Cooldown>,
    track: bool,
    /// (key, bucket start) → (admissions added, the latest one's time in ms, the key's window).
    pub added: HashMap<(String, i64), (u32, i64, u32)>,
    /// Cooldowns written.
    pub cooled: HashMap<String, Cooldown>,
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn ceil_secs(d_ms: i64) -> u64 {
    (d_ms.max(0) as u64).div_ceil(1000)
}

impl Ledger {
    /// A ledger that records what each admission adds (for writing back).
    pub fn tracking() -> Self {
        Self {
            track: true,
            ..Self::default()
        }
    }

    /// Loads a stored bucket.
    pub fn load_bucket(&mut self, key: &str, window_secs: u32, start_ms: i64, bucket: Bucket) {
        let b = self.buckets(key, window_secs).entry(start_ms).or_default();
        b.count += bucket.count;
        b.last_ms = b.last_ms.max(bucket.last_ms);
    }

    fn buckets(&mut self, key: &str, window_secs: u32) -> &mut BTreeMap<i64, Bucket> {
        let entry = self.counters.get_or_insert_with(key, || (window_secs, BTreeMap::new()));
        entry.0 = entry.0.max(window_secs);
        &mut entry.1
    }

    /// Loads a stored cooldown.
    pub fn load_cooldown(&mut self, key: &str, cooldown: Cooldown) {
        self.cooldowns.insert(key.to_string(), cooldown);
    }

    /// The refusal of `q` at `now`, if it is spent: the sum over the buckets whose latest
    /// admission is inside the window, and when enough of them leave it for one more admission.
    fn spent(&self, q: &Quota, now_ms: i64) -> Option<Admission> {
        let window = window_ms(q.window_secs);
        let buckets = self.counters.get(&q.key).map(|(_, b)| b);
        let counted = || {
            buckets
                .into_iter()
                .flat_map(|b| b.range((now_ms - window - bucket_ms(q.window_secs) + 1)..=now_ms))
                .map(|(_, b)| b)
                .filter(|b| b.last_ms > now_ms - window)
        };
        let total: u64 = counted().map(|b| u64::from(b.count)).sum();
        if total < u64::from(q.limit) {
            return None;
        }
        // Leaving oldest first, the bucket whose leaving brings the count under the limit.
        let mut left = total;
        let mut free_at = now_ms + window;
        for b in counted() {
            left -= u64::from(b.count);
            if left < u64::from(q.limit) {
                free_at = b.last_ms + window;
                break;
            }
        }
        Some(Admission::Refused {
            key: q.key.clone(),
            retry_after_secs: ceil_secs(free_at - now_ms).max(1),
        })
    }

    /// The first spent quota, taking nothing.
    pub fn check(&self, quotas: &[Quota], now: DateTime<Utc>) -> Option<Admission> {
        quotas.iter().find_map(|q| self.spent(q, ms(now)))
    }

    /// Takes one from every quota and the cooldown, or nothing.
    pub fn take(&mut self, quotas: &[Quota], cooldown: Option<&CooldownSpec>, now: DateTime<Utc>) -> Admission {
        if let Some(refused) = self.check(quotas, now) {
            return refused;
        }
        let mut resend_after_secs = None;
        if let Some(spec) = cooldown {
            let mut resends = 0;
            if let Some(cd) = self.cooldowns.get(&spec.key) {
                if cd.until > now {
                    return Admission::Refused {
                        key: spec.key.clone(),
                        retry_after_secs: ceil_secs(ms(cd.until) - ms(now)).max(1),
                    };
                }
                if cd.last_sent > now - Duration::seconds(i64::from(spec.reset_secs)) {
                    resends = cd.resends.saturating_add(1).max(0);
                }
            }
            let wait = cooldown_wait(spec, resends as u32);
            let cd = Cooldown {
                last_sent: now,
                resends,
                until: now + Duration::seconds(i64::from(wait)),
            };
            self.cooldowns.insert(spec.key.clone(), cd);
            if self.track {
                self.cooled.insert(spec.key.clone(), cd);
            }
            resend_after_secs = Some(u64::from(wait));
        }
        let now_ms = ms(now);
        for q in quotas {
            let start = bucket_start(now_ms, q.window_secs);
            let buckets = self.buckets(&q.key, q.window_secs);
            let b = buckets.entry(start).or_default();
            b.count += 1;
            b.last_ms = b.last_ms.max(now_ms);
            // Buckets that left the window only cost memory from here on.
            let oldest = now_ms - window_ms(q.window_secs) - bucket_ms(q.window_secs);
            while let Some(entry) = buckets.first_entry() {
                if *entry.key() > oldest {
                    break;
                }
                entry.remove();
            }
            if self.track {
                let added = self.added.entry((q.key.clone(), start)).or_insert((0, now_ms, q.window_secs));
                added.0 += 1;
                added.1 = added.1.max(now_ms);
            }
        }
        Admission::Admitted { resend_after_secs }
    }

    /// Forgets buckets and cooldowns that no longer count at `now`; returns how many went.
    pub fn sweep(&mut self, now: DateTime<Utc>) -> u64 {
        let now_ms = ms(now);
        let mut gone = 0;
        for (window, buckets) in self.counters.values_mut() {
            let before = buckets.len();
            let window = window_ms(*window);
            buckets.retain(|_, b| b.last_ms + window > now_ms);
            gone += (before - buckets.len()) as u64;
        }
        self.counters.retain(|(_, b)| !b.is_empty());
        let before = self.cooldowns.len();
        self.cooldowns.retain(|_, cd| cd.until + Duration::days(1) > now);
        gone + (before - self.cooldowns.len()) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000 + ms).unwrap()
    }

    fn q(limit: u32) -> Quota {
        Quota {
            key: "k".into(),
            window_secs: 60,
            limit,
        }
    }

    /// Tries one admission every 250 ms for three windows and checks every span of 60 s.
    #[test]
    fn no_span_of_the_window_admits_more_than_the_limit() {
        for limit in [1, 3, 10] {
            let mut ledger = Ledger::default();
            let mut admitted = Vec::new();
            for i in 0..(3 * 240) {
                let t = i * 250;
                if let Admission::Admitted { .. } = ledger.take(&[q(limit)], None, at(t)) {
                    admitted.push(t);
                }
            }
            for (i, start) in admitted.iter().enumerate() {
                let within = admitted[i..].iter().take_while(|t| **t < start + 60_000).count();
                assert!(
                    within <= limit as usize,
                    "limit {limit}: {within} admitted in the span from {start} ms"
                );
            }
            // The limit is still reached: sustained use gets about `limit` per window.
            assert!(admitted.len() >= 3 * limit as usize - 1, "limit {limit}: only {}", admitted.len());
        }
    }

    #[test]
    fn a_refusal_says_when_enough_buckets_leave() {
        let mut ledger = Ledger::default();
        assert!(matches!(ledger.take(&[q(2)], None, at(0)), Admission::Admitted { .. }));
        assert!(matches!(ledger.take(&[q(2)], None, at(30_000)), Admission::Admitted { .. }));
        // The first admission counts until 60 s.
        assert_eq!(
            ledger.take(&[q(2)], None, at(40_000)),
            Admission::Refused {
                key: "k".into(),
                retry_after_secs: 20
            }
        );
        assert!(matches!(ledger.take(&[q(2)], None, at(59_999)), Admission::Refused { .. }));
        assert!(matches!(ledger.take(&[q(2)], None, at(60_000)), Admission::Admitted { .. }));
    }

    #[test]
    fn a_tracking_ledger_records_what_it_added() {
        let mut ledger = Ledger::tracking();
        ledger.load_bucket("k", 60, 0, Bucket { count: 5, last_ms: 0 });
        assert!(matches!(ledger.take(&[q(10)], None, at(500)), Admission::Admitted { .. }));
        assert!(matches!(ledger.take(&[q(10)], None, at(700)), Admission::Admitted { .. }));
        let start = bucket_start(ms(at(500)), 60);
        assert_eq!(ledger.added.get(&("k".to_string(), start)), Some(&(2, ms(at(700)), 60)));
    }
}
