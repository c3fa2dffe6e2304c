//! Group admission for PostgreSQL: the admissions of all concurrent sends of this process are
//! decided together, the way `writer.rs` commits their attempt logs. Every key a batch touches
//! is locked once, in hash order (transaction-level advisory locks, so instances exclude each
//! other without writing a lock into a hot row), and a hot counter row (a calling app's, a
//! prefix's) is written once per batch instead of once per send.
//!
//! The common case is one statement (`smsgate_admit_all`): when every counter has room for the
//! whole batch and no cooldown holds any of it, all are admitted at once, the locks held only
//! while that statement runs. Otherwise (a limit is near, or a cooldown runs) the batch is
//! decided exactly, one admission after another, in one transaction of two round trips: lock and
//! read the keys' live buckets and cooldowns; decide in order with the same `Ledger` the memory
//! store uses; write the summed increments and cooldowns, and commit. The sessions
//! the admitted sends open are written once, by the group commit after the send (`writer.rs`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::sliding::{bucket_ms, bucket_start, window_ms, Bucket, Cooldown, Ledger};
use super::{Admission, CooldownSpec, IdempotencyClaim, KeyClaim, Quota, StoreError};

/// Largest number of admissions in one batch.
const MAX_BATCH: usize = 256;
/// Batches in flight at once. One: the next batch gathers while the current one runs, so two
/// batches of one process never wait on each other's locks (under a loaded machine such waits
/// ran into `statement_timeout` and answered 503); only other instances' batches can make a
/// batch wait.
const IN_FLIGHT: usize = 1;

/// One admission to decide.
pub(super) struct Request {
    pub quotas: Vec<Quota>,
    pub cooldown: Option<CooldownSpec>,
    /// An `Idempotency-Key` to claim in the same transaction.
    pub claim: Option<KeyClaim>,
    pub now: DateTime<Utc>,
}

type Reply = oneshot::Sender<Result<Admission, Arc<StoreError>>>;

#[derive(Clone)]
pub(super) struct Batcher {
    tx: mpsc::Sender<(Request, Reply)>,
}

impl Batcher {
    /// Starts the batcher; each batch gives up after `limit`.
    pub fn spawn(pool: Pool, limit: Duration) -> Self {
        let (tx, rx) = mpsc::channel(8 * MAX_BATCH);
        tokio::spawn(run(pool, rx, limit));
        Self { tx }
    }

    /// Queues `req` and waits for its batch's decision, committed.
    pub async fn admit(&self, req: Request) -> Result<Admission, StoreError> {
        let (reply, done) = oneshot::channel();
        self.tx.send((req, reply)).await.map_err(|_| StoreError::WriterStopped)?;
        match done.await {
            Ok(Ok(admission)) => Ok(admission),
            Ok(Err(e)) => Err(StoreError::Batch(e)),
            Err(_) => Err(StoreError::WriterStopped),
        }
    }
}

async fn run(pool: Pool, mut rx: mpsc::Receiver<(Request, Reply)>, limit: Duration) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            let (reqs, replies): (Vec<Request>, Vec<Reply>) = batch.into_iter().unzip();
            decide_isolating(&pool, &reqs, replies, limit).await;
            drop(slot);
        });
    }
}

/// Decides `reqs` in one transaction and answers each. When PostgreSQL refuses the batch for
/// what one request holds (a data exception or a constraint), each request is decided alone so
/// that only the one at fault fails.
async fn decide_isolating(pool: &Pool, reqs: &[Request], replies: Vec<Reply>, limit: Duration) {
    let all: Vec<&Request> = reqs.iter().collect();
    match bounded(pool, limit, decide(pool, &all)).await {
        Ok(answers) => {
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(Ok(answer));
            }
        }
        Err(e) if reqs.len() > 1 && e.blames_the_rows() => {
            tracing::warn!(error = ?e, admissions = reqs.len(), "an admission batch was refused; deciding each alone");
            for (req, reply) in reqs.iter().zip(replies) {
                let answer = bounded(pool, limit, decide(pool, &[req])).await;
                let _ = reply.send(answer.map(|mut a| a.remove(0)).map_err(Arc::new));
            }
        }
        Err(e) => {
            tracing::error!(error = ?e, admissions = reqs.len(), "an admission batch failed");
            let shared = Arc::new(e);
            for reply in replies {
                let _ = reply.send(Err(Arc::clone(&shared)));
            }
        }
    }
}

pub(super) async fn bounded<T>(
    pool: &Pool,
    limit: Duration,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result,
        Err(_) => {
            // The connection it held may never answer again: start afresh.
            pool.retain(|_, _| false);
            Err(StoreError::Timeout(limit))
        }
    }
}

/// The live buckets of some keys, each from the oldest start that may still count; a bucket
/// written before `last_at` existed counts until its window's end (`expires_at`).
const READ_COUNTERS: &str = "SELECT c.key, floor(extract(epoch FROM c.window_start) * 1000)::int8, c.count,
        floor(extract(epoch FROM coalesce(c.last_at, c.expires_at)) * 1000)::int8
   FROM UNNEST($1::text[], $2::timestamptz[]) AS q(key, since)
   JOIN rate_counters AS c ON c.key = q.key AND c.window_start > q.since";

fn bucket_of(row: &tokio_postgres::Row) -> Bucket {
    let count: i32 = row.get(2);
    Bucket {
        count: count.max(0) as u32,
        last_ms: row.get(3),
    }
}

fn at_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// One batch: lock and read, decide, write and commit. A key claimed by two requests of the
/// batch is claimed by the first; the others take nothing and wait for its answer.
async fn decide(pool: &Pool, reqs: &[&Request]) -> Result<Vec<Admission>, StoreError> {
    let mut seen = std::collections::HashSet::new();
    let first: Vec<bool> = reqs
        .iter()
        .map(|r| r.claim.as_ref().is_none_or(|c| seen.insert((&c.scope, &c.key))))
        .collect();
    let firsts: Vec<&Request> = reqs.iter().zip(&first).filter(|(_, f)| **f).map(|(r, _)| *r).collect();
    let mut decided = decide_firsts(pool, &firsts).await?.into_iter();
    Ok(first
        .iter()
        .map(|f| match f {
            true => decided.next().unwrap_or(Admission::KeyHeld(IdempotencyClaim::InFlight)),
            false => Admission::KeyHeld(IdempotencyClaim::InFlight),
        })
        .collect())
}

async fn decide_firsts(pool: &Pool, reqs: &[&Request]) -> Result<Vec<Admission>, StoreError> {
    let client = pool.get().await?;
    if let Some(answers) = admit_all(&client, reqs).await? {
        return Ok(answers);
    }
    let result = decide_on(&client, reqs).await;
    if result.is_err() {
        // Never hand the pool a connection inside a transaction.
        let _ = client.batch_execute("ROLLBACK").await;
    }
    result
}

/// The keys the requests claim, in (scope, key) order so that concurrent batches claim in the
/// same order: the request's index, and the parameters of `smsgate_claim_keys`.
struct Claims<'a> {
    req: Vec<i32>,
    scope: Vec<&'a str>,
    key: Vec<&'a str>,
    hash: Vec<&'a [u8]>,
    at: Vec<DateTime<Utc>>,
    ttl: Vec<i32>,
    lease: Vec<i32>,
}

impl<'a> Claims<'a> {
    fn of(reqs: &[&'a Request]) -> Self {
        let mut claims: Vec<(usize, &KeyClaim, DateTime<Utc>)> = reqs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some((i, r.claim.as_ref()?, r.now)))
            .collect();
        claims.sort_unstable_by(|a, b| (&a.1.scope, &a.1.key).cmp(&(&b.1.scope, &b.1.key)));
        Self {
            req: claims.iter().map(|c| c.0 as i32).collect(),
            scope: claims.iter().map(|c| c.1.scope.as_str()).collect(),
            key: claims.iter().map(|c| c.1.key.as_str()).collect(),
            hash: claims.iter().map(|c| c.1.hash.as_slice()).collect(),
            at: claims.iter().map(|c| c.2).collect(),
            ttl: claims.iter().map(|c| c.1.ttl_secs.min(i32::MAX as u32) as i32).collect(),
            lease: claims.iter().map(|c| c.1.lease_secs.min(i32::MAX as u32) as i32).collect(),
        }
    }

    /// What each request found, by request index: `None` for a request without a key or whose
    /// key it claimed, else what holds the key. `found` follows the claims' order.
    fn held(&self, reqs: usize, found: impl IntoIterator<Item = ClaimFound>) -> Vec<Option<IdempotencyClaim>> {
        let mut held = vec![None; reqs];
        for (n, f) in found.into_iter().enumerate() {
            held[self.req[n] as usize] = f.held(self.hash[n]);
        }
        held
    }
}

/// One key's row from `smsgate_claim_keys` (`CLAIM_KEYS`).
struct ClaimFound {
    claimed: bool,
    hash: Option<Vec<u8>>,
    status: Option<i32>,
    response: Option<serde_json::Value>,
}

impl ClaimFound {
    fn of(row: &tokio_postgres::Row) -> Self {
        Self {
            claimed: row.get(0),
            hash: row.get(1),
            status: row.get(2),
            response: row.get(3),
        }
    }

    /// `None` when the claim succeeded, else what holds the key for a request hashed `own`.
    fn held(self, own: &[u8]) -> Option<IdempotencyClaim> {
        if self.claimed {
            return None;
        }
        Some(match (self.hash, self.status, self.response) {
            (Some(hash), _, _) if hash != own => IdempotencyClaim::Conflict,
            (Some(_), Some(status), Some(body)) => IdempotencyClaim::Replay {
                status: status as u16,
                body,
            },
            // Still running; or released between the insert and the read: try again.
            _ => IdempotencyClaim::InFlight,
        })
    }
}

/// Claims keys; one row per key, in order (see migration 0013).
const CLAIM_KEYS: &str = "SELECT claimed, request_hash, status, response FROM smsgate_claim_keys($1, $2, $3, $4, $5, $6)";

/// The common case in one statement (`smsgate_admit_all`): every admission of the batch fits,
/// and all are admitted, except those whose key is held. `None` when some counter or cooldown
/// is too close to decide that wholesale; nothing was written then.
async fn admit_all(client: &deadpool_postgres::Object, reqs: &[&Request]) -> Result<Option<Vec<Admission>>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT * FROM smsgate_admit_all($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
        )
        .await?;
    let quotas: Vec<(i32, &Quota, DateTime<Utc>)> = reqs
        .iter()
        .enumerate()
        .flat_map(|(i, r)| r.quotas.iter().map(move |q| (i as i32, q, r.now)))
        .collect();
    let q_req: Vec<i32> = quotas.iter().map(|(i, _, _)| *i).collect();
    let q_key: Vec<&str> = quotas.iter().map(|(_, q, _)| q.key.as_str()).collect();
    let q_window: Vec<i32> = quotas.iter().map(|(_, q, _)| q.window_secs.min(i32::MAX as u32) as i32).collect();
    let q_limit: Vec<i32> = quotas.iter().map(|(_, q, _)| q.limit.min(i32::MAX as u32) as i32).collect();
    let q_bucket: Vec<DateTime<Utc>> = quotas
        .iter()
        .map(|(_, q, now)| at_ms(bucket_start(now.timestamp_millis(), q.window_secs)))
        .collect();
    let q_at: Vec<DateTime<Utc>> = quotas.iter().map(|(_, _, now)| *now).collect();
    let cooldowns: Vec<(i32, &CooldownSpec, DateTime<Utc>)> = reqs
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Some((i as i32, r.cooldown.as_ref()?, r.now)))
        .collect();
    let cd_req: Vec<i32> = cooldowns.iter().map(|(i, _, _)| *i).collect();
    let cd_key: Vec<&str> = cooldowns.iter().map(|(_, c, _)| c.key.as_str()).collect();
    let cd_base: Vec<i32> = cooldowns.iter().map(|(_, c, _)| c.base_secs.min(i32::MAX as u32) as i32).collect();
    let cd_max: Vec<i32> = cooldowns.iter().map(|(_, c, _)| c.max_secs.min(i32::MAX as u32) as i32).collect();
    let cd_reset: Vec<i32> = cooldowns.iter().map(|(_, c, _)| c.reset_secs.min(i32::MAX as u32) as i32).collect();
    let cd_at: Vec<DateTime<Utc>> = cooldowns.iter().map(|(_, _, now)| *now).collect();
    let k = Claims::of(reqs);
    let row = client
        .query_one(
            &stmt,
            &[
                &q_req, &q_key, &q_window, &q_limit, &q_bucket, &q_at, &cd_req, &cd_key, &cd_base, &cd_max, &cd_reset, &cd_at, &k.req,
                &k.scope, &k.key, &k.hash, &k.at, &k.ttl, &k.lease,
            ],
        )
        .await?;
    let Some(waits) = row.get::<_, Option<Vec<Option<i32>>>>(0) else {
        return Ok(None);
    };
    let claimed: Vec<bool> = row.get(1);
    let hashes: Vec<Option<Vec<u8>>> = row.get(2);
    let statuses: Vec<Option<i32>> = row.get(3);
    let responses: Vec<Option<serde_json::Value>> = row.get(4);
    let found = claimed
        .into_iter()
        .zip(hashes)
        .zip(statuses.into_iter().zip(responses))
        .map(|((claimed, hash), (status, response))| ClaimFound {
            claimed,
            hash,
            status,
            response,
        });
    let mut held = k.held(reqs.len(), found).into_iter();
    let mut waits = waits.into_iter();
    Ok(Some(
        reqs.iter()
            .map(|r| {
                let wait = r.cooldown.as_ref().and_then(|_| waits.next()).flatten();
                match held.next().flatten() {
                    Some(found) => Admission::KeyHeld(found),
                    None => Admission::Admitted {
                        resend_after_secs: wait.map(|w| w.max(0) as u64),
                    },
                }
            })
            .collect(),
    ))
}

async fn decide_on(tx: &deadpool_postgres::Object, reqs: &[&Request]) -> Result<Vec<Admission>, StoreError> {
    // Every key the batch touches, each with the oldest bucket start any of its admissions counts.
    let mut counter_keys: Vec<(&str, u32, i64)> = Vec::new();
    for r in reqs {
        for q in &r.quotas {
            let since = r.now.timestamp_millis() - window_ms(q.window_secs) - bucket_ms(q.window_secs);
            counter_keys.push((q.key.as_str(), q.window_secs, since));
        }
    }
    counter_keys.sort_unstable();
    counter_keys.dedup_by(|a, b| {
        // Same key: keep the widest window and the oldest start in `b`.
        a.0 == b.0 && {
            b.1 = b.1.max(a.1);
            b.2 = b.2.min(a.2);
            true
        }
    });
    let mut cooldown_keys: Vec<&str> = reqs.iter().filter_map(|r| r.cooldown.as_ref()).map(|c| c.key.as_str()).collect();
    cooldown_keys.sort_unstable();
    cooldown_keys.dedup();
    let lock_keys: Vec<&str> = counter_keys.iter().map(|k| k.0).chain(cooldown_keys.iter().copied()).collect();

    let lock = tx.prepare_cached("SELECT smsgate_admission_lock($1)").await?;
    let read_counters = tx.prepare_cached(READ_COUNTERS).await?;
    let read_cooldowns = tx
        .prepare_cached("SELECT key, last_sent_at, resends, until FROM resend_cooldowns WHERE key = ANY($1)")
        .await?;
    let names: Vec<&str> = counter_keys.iter().map(|k| k.0).collect();
    let since: Vec<DateTime<Utc>> = counter_keys.iter().map(|k| at_ms(k.2)).collect();
    // Sent together, one round trip. The locks are taken by a statement of their own, so the
    // reads that follow (each with its own snapshot) see every commit made under them. Counters
    // may lose a few increments in a crash: their commit does not wait for the WAL flush.
    let lock_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&lock_keys];
    let counter_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&names, &since];
    let cooldown_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&cooldown_keys];
    // The keys are claimed after the locks are taken, as `smsgate_admit_all` does.
    let claim_keys = tx.prepare_cached(CLAIM_KEYS).await?;
    let k = Claims::of(reqs);
    let (_, _, counters, cooldowns, found) = futures::try_join!(
        tx.batch_execute("BEGIN; SET LOCAL synchronous_commit TO off"),
        tx.execute(&lock, &lock_params),
        tx.query(&read_counters, &counter_params),
        tx.query(&read_cooldowns, &cooldown_params),
        async {
            if k.req.is_empty() {
                return Ok(Vec::new());
            }
            tx.query(&claim_keys, &[&k.scope, &k.key, &k.hash, &k.at, &k.ttl, &k.lease]).await
        },
    )?;
    let held = k.held(reqs.len(), found.iter().map(ClaimFound::of));

    let mut ledger = Ledger::tracking();
    let window_of: std::collections::HashMap<&str, u32> = counter_keys.iter().map(|k| (k.0, k.1)).collect();
    for row in &counters {
        let key: &str = row.get(0);
        ledger.load_bucket(key, window_of.get(key).copied().unwrap_or(1), row.get(1), bucket_of(row));
    }
    for row in &cooldowns {
        let key: &str = row.get(0);
        let cooldown = Cooldown {
            last_sent: row.get(1),
            resends: row.get(2),
            until: row.get(3),
        };
        ledger.load_cooldown(key, cooldown);
    }
    let answers: Vec<Admission> = reqs
        .iter()
        .zip(held)
        .map(|(r, held)| match held {
            Some(found) => Admission::KeyHeld(found),
            None => ledger.take(&r.quotas, r.cooldown.as_ref(), r.now),
        })
        .collect();
    // A refused request leaves its key unclaimed.
    let unclaim: Vec<(&str, &str)> = reqs
        .iter()
        .zip(&answers)
        .filter(|(_, a)| matches!(a, Admission::Refused { .. }))
        .filter_map(|(r, _)| r.claim.as_ref().map(|c| (c.scope.as_str(), c.key.as_str())))
        .collect();

    let write_counters = tx
        .prepare_cached(
            "INSERT INTO rate_counters (key, window_start, count, last_at, expires_at)
             SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::int4[], $4::timestamptz[], $5::timestamptz[])
             ON CONFLICT (key, window_start) DO UPDATE
                SET count = rate_counters.count + EXCLUDED.count,
                    last_at = greatest(rate_counters.last_at, EXCLUDED.last_at),
                    expires_at = greatest(rate_counters.expires_at, EXCLUDED.expires_at)",
        )
        .await?;
    let write_cooldowns = tx
        .prepare_cached(
            "INSERT INTO resend_cooldowns (key, last_sent_at, resends, until)
             SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::int4[], $4::timestamptz[])
             ON CONFLICT (key) DO UPDATE
                SET last_sent_at = EXCLUDED.last_sent_at, resends = EXCLUDED.resends, until = EXCLUDED.until",
        )
        .await?;
    let mut added: Vec<_> = ledger.added.iter().collect();
    added.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut cooled: Vec<(&String, &Cooldown)> = ledger.cooled.iter().collect();
    cooled.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let c_keys: Vec<&str> = added.iter().map(|(k, _)| k.0.as_str()).collect();
    let c_starts: Vec<DateTime<Utc>> = added.iter().map(|(k, _)| at_ms(k.1)).collect();
    let c_counts: Vec<i32> = added.iter().map(|(_, v)| v.0.min(i32::MAX as u32) as i32).collect();
    let c_last: Vec<DateTime<Utc>> = added.iter().map(|(_, v)| at_ms(v.1)).collect();
    let c_expires: Vec<DateTime<Utc>> = added.iter().map(|(_, v)| at_ms(v.1 + window_ms(v.2))).collect();
    let d_keys: Vec<&str> = cooled.iter().map(|(k, _)| k.as_str()).collect();
    let d_last: Vec<DateTime<Utc>> = cooled.iter().map(|(_, c)| c.last_sent).collect();
    let d_resends: Vec<i32> = cooled.iter().map(|(_, c)| c.resends).collect();
    let d_until: Vec<DateTime<Utc>> = cooled.iter().map(|(_, c)| c.until).collect();
    // Still unanswered: claimed by this transaction.
    let unclaim_keys = tx
        .prepare_cached("SELECT smsgate_keep_answers('{}', '{}', '{}', '{}', $1, $2)")
        .await?;
    let u_scope: Vec<&str> = unclaim.iter().map(|u| u.0).collect();
    let u_key: Vec<&str> = unclaim.iter().map(|u| u.1).collect();
    // The writes and the commit, sent together: one round trip.
    futures::try_join!(
        async {
            if u_key.is_empty() {
                return Ok(0);
            }
            tx.execute(&unclaim_keys, &[&u_scope, &u_key]).await
        },
        async {
            if c_keys.is_empty() {
                return Ok(0);
            }
            tx.execute(&write_counters, &[&c_keys, &c_starts, &c_counts, &c_last, &c_expires])
                .await
        },
        async {
            if d_keys.is_empty() {
                return Ok(0);
            }
            tx.execute(&write_cooldowns, &[&d_keys, &d_last, &d_resends, &d_until]).await
        },
        async { tx.batch_execute("COMMIT").await.map(|_| 0) },
    )?;
    Ok(answers)
}

/// Reads the live buckets of `quotas` at `now` into a ledger, taking no lock (for `peek`).
pub(super) async fn snapshot(pool: &Pool, quotas: &[Quota], now: DateTime<Utc>) -> Result<Ledger, StoreError> {
    let client = pool.get().await?;
    let stmt = client.prepare_cached(READ_COUNTERS).await?;
    let names: Vec<&str> = quotas.iter().map(|q| q.key.as_str()).collect();
    let since: Vec<DateTime<Utc>> = quotas
        .iter()
        .map(|q| at_ms(now.timestamp_millis() - window_ms(q.window_secs) - bucket_ms(q.window_secs)))
        .collect();
    let mut ledger = Ledger::default();
    for row in client.query(&stmt, &[&names, &since]).await? {
        let key: &str = row.get(0);
        let window = quotas.iter().find(|q| q.key == key).map_or(1, |q| q.window_secs);
        ledger.load_bucket(key, window, row.get(1), bucket_of(&row));
    }
    Ok(ledger)
}
