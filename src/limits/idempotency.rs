//! `Idempotency-Key`: the first request with a key runs; a replay with the same request gets the
//! first answer and sends nothing; the same key with another request is a conflict. A duplicate
//! that arrives while the first still runs waits for its answer. Answers worth retrying are not
//! kept: the key is released for the retry (the caller says which answers those are).
//!
//! The key is claimed with the send's admission (`Limits::admit`), in the same round trip: the
//! request runs with a `Claim`, and what the claim found decides what `once` answers. A request
//! refused before its admission (a malformed field, a blocked country) claims nothing: a retry
//! runs again and is refused again, and nothing is sent either time. The answer is stored after
//! the request has answered (`LimitStore::keep_answer`); a retry that comes first waits for it.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::Value;

use crate::store::{IdempotencyClaim, KeyClaim, Store, StoreError};

const KEY_TTL_SECS: u32 = 24 * 3600;
/// A claim whose request never finished (its instance died) is taken over after this.
const LEASE_SECS: u32 = 60;
/// How long a duplicate waits for the first request's answer.
const WAIT: Duration = Duration::from_secs(15);
/// A waiting duplicate looks again after this, doubling up to `POLL_MAX`.
const POLL_FIRST: Duration = Duration::from_millis(20);
const POLL_MAX: Duration = Duration::from_millis(500);

/// An answer that can be stored and replayed.
pub trait Replayable {
    /// The HTTP status and JSON body to store.
    fn stored(&self) -> (u16, Value);
    /// Whether a retry with the same key should run again rather than replay this answer.
    fn releases_key(&self) -> bool;
}

/// What `once` did.
#[derive(Debug)]
pub enum Once<A> {
    /// The request ran (first use of the key, or no key).
    Ran(A),
    /// A replay: the first request's stored answer.
    Replayed { status: u16, body: Value },
}

#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    #[error("this Idempotency-Key was used with a different request")]
    Conflict,
    #[error("a request with this Idempotency-Key is still being processed")]
    InFlight,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A request's `Idempotency-Key`, to be claimed with its admission; keeps what the claim found.
#[derive(Debug)]
pub struct Claim {
    spec: KeyClaim,
    found: OnceLock<IdempotencyClaim>,
}

impl Claim {
    pub(crate) fn spec(&self) -> &KeyClaim {
        &self.spec
    }

    /// Records what the admission's claim found (once: a request is admitted at most once).
    pub(crate) fn settle(&self, found: IdempotencyClaim) {
        let _ = self.found.set(found);
    }
}

pub struct Idempotency {
    store: Arc<dyn Store>,
}

impl Idempotency {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Runs `run` at most once per (`scope`, `key`) past its admission; `request_hash`
    /// identifies the request. `run` gets the `Claim` to admit with, and may run again while
    /// the first request with the key is still running (each time with a fresh claim).
    pub async fn once<A, F, Fut>(&self, scope: &str, key: Option<&str>, request_hash: &[u8], run: F) -> Result<Once<A>, IdempotencyError>
    where
        A: Replayable,
        F: Fn(Option<Arc<Claim>>) -> Fut,
        Fut: Future<Output = A>,
    {
        let Some(key) = key else {
            return Ok(Once::Ran(run(None).await));
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut poll = POLL_FIRST;
        loop {
            let claim = Arc::new(Claim {
                spec: KeyClaim {
                    scope: scope.to_string(),
                    key: key.to_string(),
                    hash: request_hash.to_vec(),
                    ttl_secs: KEY_TTL_SECS,
                    lease_secs: LEASE_SECS,
                },
                found: OnceLock::new(),
            });
            let answer = run(Some(Arc::clone(&claim))).await;
            match claim.found.get() {
                // Refused before or at its admission: nothing was sent, nothing claimed.
                None => return Ok(Once::Ran(answer)),
                Some(IdempotencyClaim::Claimed) => {
                    let kept = (!answer.releases_key()).then(|| answer.stored());
                    self.store.keep_answer(scope, key, kept);
                    return Ok(Once::Ran(answer));
                }
                Some(IdempotencyClaim::Replay { status, body }) => {
                    return Ok(Once::Replayed {
                        status: *status,
                        body: body.clone(),
                    })
                }
                Some(IdempotencyClaim::Conflict) => return Err(IdempotencyError::Conflict),
                Some(IdempotencyClaim::InFlight) if tokio::time::Instant::now() + poll < deadline => {
                    tokio::time::sleep(poll).await;
                    poll = (poll * 2).min(POLL_MAX);
                }
                Some(IdempotencyClaim::InFlight) => return Err(IdempotencyError::InFlight),
            }
        }
    }
}
