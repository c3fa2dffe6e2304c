//! Stored answers of `Idempotency-Key`s, for PostgreSQL: the answers (or releases) of all
//! concurrent keyed requests are written by one statement per batch, after the requests have
//! answered. A keyed send so waits on two round trips, as an unkeyed one does: its admission
//! (which claimed the key) and its attempt log. Until its answer is written, a retry with the
//! key finds it running and waits for it; on shutdown, `flush` writes what is queued.

use std::collections::HashMap;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};

use super::admission::bounded;
use super::StoreError;

/// Largest number of answers in one statement.
const MAX_BATCH: usize = 512;

/// A key's answer to store (`Some`: status and body), or `None` to release the key.
pub(super) struct Answer {
    pub scope: String,
    pub key: String,
    pub answer: Option<(u16, serde_json::Value)>,
}

enum Job {
    Store(Answer),
    /// Answered once every answer queued before it is written (or failed).
    Flush(oneshot::Sender<()>),
}

pub(super) struct Answers {
    tx: mpsc::UnboundedSender<Job>,
}

impl Answers {
    /// Starts the writer; each statement gives up after `limit`.
    pub fn spawn(pool: Pool, limit: Duration) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(pool, rx, limit));
        Self { tx }
    }

    /// Queues `answer`; it is written with the next batch.
    pub fn queue(&self, answer: Answer) {
        if self.tx.send(Job::Store(answer)).is_err() {
            tracing::error!("the idempotency answer writer has stopped; a key stays claimed until its lease ends");
        }
    }

    /// Waits until every answer queued so far is written.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Job::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

async fn run(pool: Pool, mut rx: mpsc::UnboundedReceiver<Job>, limit: Duration) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let mut answers = Vec::new();
        let mut flushes = Vec::new();
        for job in jobs {
            match job {
                Job::Store(a) => answers.push(a),
                Job::Flush(done) => flushes.push(done),
            }
        }
        if !answers.is_empty() {
            write_isolating(&pool, answers, limit).await;
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Writes a batch; when PostgreSQL refuses it for what one answer holds, each alone, so that
/// only that one is lost (its key stays claimed until its lease ends).
async fn write_isolating(pool: &Pool, answers: Vec<Answer>, limit: Duration) {
    // One write per key, the last queued: a statement may not change a row twice.
    let mut last: HashMap<(String, String), Option<(u16, serde_json::Value)>> = HashMap::new();
    for a in answers {
        last.insert((a.scope, a.key), a.answer);
    }
    let batch: Vec<_> = last.into_iter().collect();
    match bounded(pool, limit, write(pool, &batch)).await {
        Ok(()) => {}
        Err(e) if batch.len() > 1 && e.blames_the_rows() => {
            tracing::warn!(error = ?e, answers = batch.len(), "a batch of idempotent answers was refused; writing each alone");
            for one in batch.chunks(1) {
                if let Err(e) = bounded(pool, limit, write(pool, one)).await {
                    tracing::error!(error = ?e, "storing an idempotent answer failed");
                }
            }
        }
        Err(e) => tracing::error!(error = ?e, answers = batch.len(), "storing idempotent answers failed"),
    }
}

type Keyed = ((String, String), Option<(u16, serde_json::Value)>);

/// Stores the answers and deletes the released keys (`smsgate_keep_answers`, migration 0013).
async fn write(pool: &Pool, batch: &[Keyed]) -> Result<(), StoreError> {
    let client = pool.get().await?;
    let stmt = client.prepare_cached("SELECT smsgate_keep_answers($1, $2, $3, $4, $5, $6)").await?;
    let kept: Vec<_> = batch
        .iter()
        .filter_map(|((s, k), a)| Some((s.as_str(), k.as_str(), a.as_ref()?)))
        .collect();
    let released: Vec<_> = batch
        .iter()
        .filter(|(_, a)| a.is_none())
        .map(|((s, k), _)| (s.as_str(), k.as_str()))
        .collect();
    let k_scope: Vec<&str> = kept.iter().map(|k| k.0).collect();
    let k_key: Vec<&str> = kept.iter().map(|k| k.1).collect();
    let k_status: Vec<i32> = kept.iter().map(|k| k.2 .0 as i32).collect();
    let k_body: Vec<&serde_json::Value> = kept.iter().map(|k| &k.2 .1).collect();
    let r_scope: Vec<&str> = released.iter().map(|r| r.0).collect();
    let r_key: Vec<&str> = released.iter().map(|r| r.1).collect();
    client
        .execute(&stmt, &[&k_scope, &k_key, &k_status, &k_body, &r_scope, &r_key])
        .await?;
    Ok(())
}
