//! `Idempotency-Key`: the first request with a key runs; a replay with the same request gets the
//! first answer and sends nothing; the same key with another request is a conflict. A duplicate
//! that arrives while the first still runs waits for its answer. Answers worth retrying are not
//! kept: the key is released for the retry (the caller says which answers those are).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::clock::Clock;
use crate::store::{IdempotencyClaim, Store, StoreError};

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

pub struct Idempotency {
    store: Arc<dyn Store>,
    clock: Clock,
}

impl Idempotency {
    pub fn new(store: Arc<dyn Store>, clock: Clock) -> Self {
        Self { store, clock }
    }

    /// Runs `run` at most once per (`scope`, `key`); `request_hash` identifies the request.
    pub async fn once<A, F, Fut>(&self, scope: &str, key: Option<&str>, request_hash: &[u8], run: F) -> Result<Once<A>, IdempotencyError>
    where
        A: Replayable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = A>,
    {
        let Some(key) = key else {
            return Ok(Once::Ran(run().await));
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut poll = POLL_FIRST;
        loop {
            let claim = self
                .store
                .claim_idempotency(scope, key, request_hash, self.clock.now(), KEY_TTL_SECS, LEASE_SECS)
                .await?;
            match claim {
                IdempotencyClaim::Claimed => break,
                IdempotencyClaim::Replay { status, body } => return Ok(Once::Replayed { status, body }),
                IdempotencyClaim::Conflict => return Err(IdempotencyError::Conflict),
                IdempotencyClaim::InFlight if tokio::time::Instant::now() + poll < deadline => {
                    tokio::time::sleep(poll).await;
                    poll = (poll * 2).min(POLL_MAX);
                }
                IdempotencyClaim::InFlight => return Err(IdempotencyError::InFlight),
            }
        }
        let answer = run().await;
        let stored = if answer.releases_key() {
            self.store.release_idempotency(scope, key).await
        } else {
            let (status, body) = answer.stored();
            self.store.complete_idempotency(scope, key, status, &body).await
        };
        if let Err(e) = stored {
            tracing::error!(error = ?e, "storing the idempotent answer failed");
        }
        Ok(Once::Ran(answer))
    }
}
