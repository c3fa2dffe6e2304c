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
use super::{Admission, CooldownSpec, Quota, StoreError};

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
        Err(e) if reqs.len() > 1 && blames_the_rows(&e) => {
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

async fn bounded<T>(pool: &Pool, limit: Duration, call: impl std::future::Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result,
        Err(_) => {
            // The connection it held may never answer again: start afresh.
            pool.retain(|_, _| false);
            Err(StoreError::Timeout(limit))
        }
    }
}

/// SQLSTATE class 22 (data exception) or 23 (integrity constraint violation).
fn blames_the_rows(e: &StoreError) -> bool {
    match e {
        StoreError::Database(db) => db.code().is_some_and(|c| matches!(c.code().get(..2), Some("22" | "23"))),
        _ => false,
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

/// One batch: lock and read, decide, write and commit.
async fn decide(pool: &Pool, reqs: &[&Request]) -> Result<Vec<Admission>, StoreError> {
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

/// The common case in one statement (`smsgate_admit_all`): every admission of the batch fits,
/// and all are admitted. `None` when some counter or cooldown is too close to decide that
/// wholesale; nothing was written then.
async fn admit_all(client: &deadpool_postgres::Object, reqs: &[&Request]) -> Result<Option<Vec<Admission>>, StoreError> {
    let stmt = client
        .prepare_cached("SELECT smsgate_admit_all($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
        .await?;
    let quotas: Vec<(&Quota, DateTime<Utc>)> = reqs.iter().flat_map(|r| r.quotas.iter().map(|q| (q, r.now))).collect();
    let q_key: Vec<&str> = quotas.iter().map(|(q, _)| q.key.as_str()).collect();
    let q_window: Vec<i32> = quotas.iter().map(|(q, _)| q.window_secs.min(i32::MAX as u32) as i32).collect();
    let q_limit: Vec<i32> = quotas.iter().map(|(q, _)| q.limit.min(i32::MAX as u32) as i32).collect();
    let q_bucket: Vec<DateTime<Utc>> = quotas
        .iter()
        .map(|(q, now)| at_ms(bucket_start(now.timestamp_millis(), q.window_secs)))
        .collect();
    let q_at: Vec<DateTime<Utc>> = quotas.iter().map(|(_, now)| *now).collect();
    let cooldowns: Vec<(&CooldownSpec, DateTime<Utc>)> = reqs.iter().filter_map(|r| Some((r.cooldown.as_ref()?, r.now))).collect();
    let cd_key: Vec<&str> = cooldowns.iter().map(|(c, _)| c.key.as_str()).collect();
    let cd_base: Vec<i32> = cooldowns.iter().map(|(c, _)| c.base_secs.min(i32::MAX as u32) as i32).collect();
    let cd_max: Vec<i32> = cooldowns.iter().map(|(c, _)| c.max_secs.min(i32::MAX as u32) as i32).collect();
    let cd_reset: Vec<i32> = cooldowns.iter().map(|(c, _)| c.reset_secs.min(i32::MAX as u32) as i32).collect();
    let cd_at: Vec<DateTime<Utc>> = cooldowns.iter().map(|(_, now)| *now).collect();
    let row = client
        .query_one(
            &stmt,
            &[
                &q_key, &q_window, &q_limit, &q_bucket, &q_at, &cd_key, &cd_base, &cd_max, &cd_reset, &cd_at,
            ],
        )
        .await?;
    let Some(waits) = row.get::<_, Option<Vec<i32>>>(0) else {
        return Ok(None);
    };
    let mut waits = waits.into_iter();
    Ok(Some(
        reqs.iter()
            .map(|r| Admission::Admitted {
                resend_after_secs: r.cooldown.as_ref().and(waits.next()).map(|w| w.max(0) as u64),
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
    let (_, _, counters, cooldowns) = futures::try_join!(
        tx.batch_execute("BEGIN; SET LOCAL synchronous_commit TO off"),
        tx.execute(&lock, &lock_params),
        tx.query(&read_counters, &counter_params),
        tx.query(&read_cooldowns, &cooldown_params),
    )?;

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
    let answers: Vec<Admission> = reqs.iter().map(|r| ledger.take(&r.quotas, r.cooldown.as_ref(), r.now)).collect();

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
    // The writes and the commit, sent together: one round trip.
    futures::try_join!(
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
