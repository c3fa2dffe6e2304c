//! What the fakes remember: delivered messages, provider-held OTP codes, faults and call counts.
//! In memory and bounded, shared by every fake of one simulator.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::faults::Fault;
use super::names::{canonical, PROVIDERS};
use super::SimCredentials;

/// How many messages (and provider-held codes per provider) are kept; older ones are dropped.
pub const CAPACITY: usize = 10_000;

/// One message a fake accepted and "delivered".
#[derive(Debug, Clone, Serialize)]
pub struct SimMessage {
    pub provider: String,
    /// E.164 with the leading `+`.
    pub to: String,
    pub text: Option<String>,
    /// The OTP code, when the message is one.
    pub code: Option<String>,
    pub template: Option<String>,
    pub vars: Vec<String>,
    /// The id the fake answered with (message sid, uuid, session id…).
    pub id: String,
    pub at: DateTime<Utc>,
}

impl SimMessage {
    /// A message to `to` (E.164) with no content yet.
    pub fn new(provider: &str, to: &str, id: &str) -> Self {
        Self {
            provider: provider.to_string(),
            to: to.to_string(),
            text: None,
            code: None,
            template: None,
            vars: Vec::new(),
            id: id.to_string(),
            at: Utc::now(),
        }
    }
}

/// A provider-held OTP code (2Factor session, Twilio verification, MSG91 mobile).
#[derive(Debug, Clone)]
pub struct HeldCode {
    pub to: String,
    pub code: String,
    /// Set once the code matched; a used code never matches again.
    pub used: bool,
    /// Wrong guesses so far.
    pub misses: u32,
}

/// The answer to checking a provider-held code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Matched,
    Mismatch,
    AlreadyUsed,
    Unknown,
}

/// A map that forgets its oldest keys past [`CAPACITY`].
pub struct Bounded<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
}

impl<K: Hash + Eq + Clone, V> Default for Bounded<K, V> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<K: Hash + Eq + Clone, V> Bounded<K, V> {
    pub fn insert(&mut self, key: K, value: V) {
        if self.map.insert(key.clone(), value).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    /// The most recently inserted key whose value satisfies `pred`.
    pub fn newest_key(&self, pred: impl Fn(&V) -> bool) -> Option<&K> {
        self.order.iter().rev().find(|k| self.map.get(*k).is_some_and(&pred))
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.map.get_mut(key)
    }
}

#[derive(Default)]
struct Inner {
    messages: VecDeque<SimMessage>,
    faults: HashMap<&'static str, Fault>,
    /// Codes held by a provider, keyed by provider then by its reference.
    held: HashMap<&'static str, Bounded<String, HeldCode>>,
    /// The templates registered with a provider; a provider not listed knows every template.
    templates: HashMap<&'static str, HashSet<String>>,
}

/// Everything the simulator remembers; shared by all its fakes.
pub struct SimState {
    pub(crate) credentials: SimCredentials,
    calls: [AtomicU64; 7],
    inner: Mutex<Inner>,
    /// Where delivered messages' receipts go (`sim::receipts`).
    pub receipts: super::receipts::Receipts,
}

fn index(provider: &str) -> Option<usize> {
    let name = canonical(provider)?;
    PROVIDERS.iter().position(|p| *p == name)
}

/// Digits only, so `+91…` and `91…` compare equal.
fn digits(number: &str) -> &str {
    number.trim().trim_start_matches('+')
}

impl SimState {
    pub fn new(credentials: SimCredentials) -> Self {
        Self {
            credentials,
            calls: Default::default(),
            inner: Mutex::new(Inner::default()),
            receipts: Default::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panicking handler cannot leave the maps half-updated in a way that matters here.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Delivered messages, oldest first; `to` matches with or without the `+`.
    pub fn messages(&self, to: Option<&str>) -> Vec<SimMessage> {
        let inner = self.lock();
        inner
            .messages
            .iter()
            .filter(|m| to.is_none_or(|t| digits(&m.to) == digits(t)))
            .cloned()
            .collect()
    }

    /// Registers exactly `names` as the templates `provider` knows (as with DLT, a template
    /// must be registered before it is sent); `None` goes back to knowing every template.
    pub fn set_templates(&self, provider: &str, names: Option<&[&str]>) {
        let Some(name) = canonical(provider) else { return };
        let mut inner = self.lock();
        match names {
            Some(names) => {
                inner.templates.insert(name, names.iter().map(|n| n.to_string()).collect());
            }
            None => {
                inner.templates.remove(name);
            }
        }
    }

    /// Whether `provider` would send the template named `template`.
    pub fn knows_template(&self, provider: &str, template: &str) -> bool {
        let Some(name) = canonical(provider) else { return false };
        self.lock().templates.get(name).is_none_or(|known| known.contains(template))
    }

    /// Forgets every delivered message.
    pub fn clear_messages(&self) {
        self.lock().messages.clear();
    }

    /// HTTP requests the fake named `provider` received, faulted ones included.
    pub fn calls(&self, provider: &str) -> u64 {
        index(provider).map_or(0, |i| self.calls[i].load(Ordering::Relaxed))
    }

    pub(crate) fn count_call(&self, provider: &str) {
        if let Some(i) = index(provider) {
            self.calls[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sets (or with `None` clears) the fault of `provider`; unknown names are ignored.
    pub fn set_fault(&self, provider: &str, fault: Option<Fault>) {
        let Some(name) = canonical(provider) else {
            tracing::warn!(provider, "sim: no such provider, fault ignored");
            return;
        };
        let mut inner = self.lock();
        match fault {
            Some(f) => inner.faults.insert(name, f),
            None => inner.faults.remove(name),
        };
    }

    /// The current fault of `provider`.
    pub fn fault(&self, provider: &str) -> Option<Fault> {
        let name = canonical(provider)?;
        self.lock().faults.get(name).cloned()
    }

    /// The newest OTP code delivered to `to` by any provider.
    pub fn last_code(&self, to: &str) -> Option<String> {
        let inner = self.lock();
        inner
            .messages
            .iter()
            .rev()
            .filter(|m| digits(&m.to) == digits(to))
            .find_map(|m| m.code.clone())
    }

    pub(crate) fn record(&self, message: SimMessage) {
        self.receipts.dispatch(&message, &self.credentials);
        let mut inner = self.lock();
        inner.messages.push_back(message);
        while inner.messages.len() > CAPACITY {
            inner.messages.pop_front();
        }
    }

    /// Remembers a code `provider` holds under `reference`, replacing any earlier one.
    pub(crate) fn hold_code(&self, provider: &'static str, reference: &str, to: &str, code: &str) {
        let held = HeldCode {
            to: to.to_string(),
            code: code.to_string(),
            used: false,
            misses: 0,
        };
        let mut inner = self.lock();
        inner.held.entry(provider).or_default().insert(reference.to_string(), held);
    }

    /// The code `provider` holds under `reference`, if any.
    pub(crate) fn held_code(&self, provider: &'static str, reference: &str) -> Option<HeldCode> {
        let inner = self.lock();
        inner.held.get(provider)?.get(&reference.to_string()).cloned()
    }

    /// The reference of the newest unused code `provider` holds for `to` (with or without `+`).
    pub(crate) fn pending_reference(&self, provider: &'static str, to: &str) -> Option<String> {
        let inner = self.lock();
        let held = inner.held.get(provider)?;
        held.newest_key(|h| !h.used && digits(&h.to) == digits(to)).cloned()
    }

    /// Checks `code` against the one held under `reference`; a match uses it up.
    pub(crate) fn check_code(&self, provider: &'static str, reference: &str, code: &str) -> Check {
        let mut inner = self.lock();
        let Some(held) = inner.held.get_mut(provider).and_then(|h| h.get_mut(&reference.to_string())) else {
            return Check::Unknown;
        };
        if held.used {
            Check::AlreadyUsed
        } else if held.code == code.trim() {
            held.used = true;
            Check::Matched
        } else {
            held.misses += 1;
            Check::Mismatch
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> SimState {
        SimState::new(SimCredentials::default())
    }

    #[test]
    fn numbers_match_with_or_without_plus_and_the_newest_code_wins() {
        let s = state();
        let mut a = SimMessage::new("twilio", "+919876543210", "1");
        a.code = Some("1111".into());
        let mut b = SimMessage::new("vonage", "+919876543210", "2");
        b.code = Some("2222".into());
        s.record(a);
        s.record(b);
        s.record(SimMessage::new("plivo", "+919876543210", "3"));
        assert_eq!(s.messages(Some("919876543210")).len(), 3);
        assert_eq!(s.messages(Some("+449876543210")).len(), 0);
        assert_eq!(s.last_code("919876543210").as_deref(), Some("2222"));
    }

    #[test]
    fn messages_are_bounded() {
        let s = state();
        for i in 0..CAPACITY + 5 {
            s.record(SimMessage::new("plivo", "+15550000000", &i.to_string()));
        }
        let all = s.messages(None);
        assert_eq!(all.len(), CAPACITY);
        assert_eq!(all[0].id, "5");
    }

    #[test]
    fn a_held_code_matches_once() {
        let s = state();
        s.hold_code("2factor", "sess", "+919876543210", "123456");
        assert_eq!(s.check_code("2factor", "sess", "000000"), Check::Mismatch);
        assert_eq!(s.check_code("2factor", "sess", "123456"), Check::Matched);
        assert_eq!(s.check_code("2factor", "sess", "123456"), Check::AlreadyUsed);
        assert_eq!(s.check_code("2factor", "nope", "123456"), Check::Unknown);
    }

    #[test]
    fn calls_are_counted_per_provider_and_alias() {
        let s = state();
        s.count_call("two_factor");
        s.count_call("2factor");
        assert_eq!(s.calls("2factor"), 2);
        assert_eq!(s.calls("twilio"), 0);
    }

    #[test]
    fn a_provider_knows_every_template_until_told_which_are_registered() {
        let s = state();
        assert!(s.knows_template("msg91", "anything"));
        s.set_templates("two_factor", Some(&["OrderShipped"]));
        assert!(s.knows_template("2factor", "OrderShipped"));
        assert!(!s.knows_template("2factor", "NoSuchTemplate"));
        assert!(s.knows_template("msg91", "NoSuchTemplate"), "per provider");
        s.set_templates("2factor", None);
        assert!(s.knows_template("2factor", "NoSuchTemplate"));
    }
}
