//! Group commit: attempt rows, session updates and OTP events of all concurrent sends are
//! written by one statement (`INSERT … SELECT FROM UNNEST`), then each waiting send is answered.
//! While one batch commits the next one gathers, so durability does not cost throughput.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::{SendLog, StoreError};
use crate::metrics::Metrics;

/// Largest number of sends in one statement.
const MAX_BATCH: usize = 512;
/// Batches committing at once.
const IN_FLIGHT: usize = 2;

type Reply = oneshot::Sender<Result<(), Arc<StoreError>>>;

#[derive(Clone)]
pub struct LogWriter {
    tx: mpsc::Sender<(SendLog, Reply)>,
}

impl LogWriter {
    /// Starts the writer; each statement it runs gives up after `limit` (a database that stops
    /// answering must not hold the batch slots, and every send waiting on them, forever).
    pub fn spawn(pool: Pool, metrics: Metrics, limit: Duration) -> Self {
        let (tx, rx) = mpsc::channel(8 * MAX_BATCH);
        tokio::spawn(run(pool, rx, metrics, limit));
        Self { tx }
    }

    /// Queues `log` and waits until it is committed.
    pub async fn write(&self, log: SendLog) -> Result<(), StoreError> {
        let (reply, done) = oneshot::channel();
        self.tx.send((log, reply)).await.map_err(|_| StoreError::WriterStopped)?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Batch(e)),
            Err(_) => Err(StoreError::WriterStopped),
        }
    }
}

async fn run(pool: Pool, mut rx: mpsc::Receiver<(SendLog, Reply)>, metrics: Metrics, limit: Duration) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        // Take whatever else arrived while waiting for a slot.
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let (logs, replies): (Vec<SendLog>, Vec<Reply>) = batch.into_iter().unzip();
            let rows = logs.iter().map(|l| l.attempts.len()).sum::<usize>();
            metrics.log_batch_rows.with_label_values(&["postgres"]).observe(rows as f64);
            commit_isolating(&pool, &logs, replies, limit).await;
            drop(slot);
        });
    }
}

/// Commits `logs` and answers each send. When the statement fails on the data of the rows
/// (one send's value PostgreSQL refuses, or a constraint), the batch is halved and each half
/// committed on its own, down to single sends: only the send at fault fails, never the other
/// sends that happened to share its statement. Any other failure (connection, pool) fails
/// every send of the range at once, without multiplying statements against a sick database.
async fn commit_isolating(pool: &Pool, logs: &[SendLog], replies: Vec<Reply>, limit: Duration) {
    let mut replies: Vec<Option<Reply>> = replies.into_iter().map(Some).collect();
    // Ranges of `logs` still to commit; the whole batch first.
    let mut pending = Vec::new();
    pending.push(0..logs.len());
    while let Some(range) = pending.pop() {
        let part: Vec<&SendLog> = logs[range.clone()].iter().collect();
        let result = match tokio::time::timeout(limit, commit(pool, &part)).await {
            Ok(result) => result,
            Err(_) => {
                // The connection it held may never answer again: start afresh.
                pool.retain(|_, _| false);
                Err(StoreError::Timeout(limit))
            }
        };
        match &result {
            Err(e) if range.len() > 1 && blames_the_rows(e) => {
                tracing::warn!(error = ?e, sends = range.len(), "group commit refused a row; committing the batch in halves");
                let mid = range.start + range.len() / 2;
                pending.push(mid..range.end);
                pending.push(range.start..mid);
                continue;
            }
            Err(e) => tracing::error!(error = ?e, sends = range.len(), "group commit failed"),
            Ok(()) => {}
        }
        let shared = result.map_err(Arc::new);
        for reply in replies[range].iter_mut().filter_map(Option::take) {
            let _ = reply.send(shared.clone());
        }
    }
}

/// Whether PostgreSQL refused the statement for what the rows hold (SQLSTATE class 22, data
/// exception, such as a NUL byte in `text`; or 23, integrity constraint violation), so that
/// the same statement without the offending send would commit.
fn blames_the_rows(e: &StoreError) -> bool {
    match e {
        StoreError::Database(db) => db.code().is_some_and(|c| matches!(c.code().get(..2), Some("22" | "23"))),
        _ => false,
    }
}

/// One statement for the whole batch: three data-modifying CTEs commit together.
///
/// Sent with its parameter types as an unnamed statement, so PostgreSQL plans it for each batch
/// with the tables as they are then. A cached generic plan, made while `sms_otp_sessions` was
/// small (a new database, a fresh partition), kept joining the sessions by a sequential scan
/// once the table had grown: every batch read the whole table, and throughput fell as it grew.
async fn commit(pool: &Pool, logs: &[&SendLog]) -> Result<(), StoreError> {
    use tokio_postgres::types::{ToSql, Type};
    let client = pool.get().await?;
    let a: Vec<_> = logs.iter().flat_map(|l| l.attempts.iter()).collect();
    let s: Vec<_> = logs.iter().filter_map(|l| l.session.as_ref()).collect();
    let e: Vec<_> = logs.iter().flat_map(|l| l.events.iter()).collect();
    let refs: Vec<serde_json::Value> = s.iter().map(|u| serde_json::to_value(&u.add_refs).unwrap_or_default()).collect();
    let a_id: Vec<_> = a.iter().map(|r| r.id).collect();
    let a_message: Vec<_> = a.iter().map(|r| r.message_id).collect();
    let a_session: Vec<_> = a.iter().map(|r| r.session_id).collect();
    let a_user: Vec<_> = a.iter().map(|r| r.user_id.as_deref()).collect();
    let a_to: Vec<_> = a.iter().map(|r| r.to.as_str()).collect();
    let a_kind: Vec<_> = a.iter().map(|r| r.kind.as_str()).collect();
    let a_provider: Vec<_> = a.iter().map(|r| r.provider.as_str()).collect();
    let a_outcome: Vec<_> = a.iter().map(|r| r.outcome.as_str()).collect();
    let a_status: Vec<_> = a.iter().map(|r| r.http_status).collect();
    let a_error: Vec<_> = a.iter().map(|r| r.error.as_deref()).collect();
    let a_ref: Vec<_> = a.iter().map(|r| r.provider_ref.as_deref()).collect();
    let a_time: Vec<_> = a.iter().map(|r| r.response_time_ms).collect();
    let a_ambiguous: Vec<_> = a.iter().map(|r| r.ambiguous).collect();
    let a_created: Vec<_> = a.iter().map(|r| r.created_at).collect();
    let a_parts: Vec<_> = a.iter().map(|r| r.parts).collect();
    let s_id: Vec<_> = s.iter().map(|u| u.id).collect();
    let s_provider: Vec<_> = s.iter().map(|u| u.delivered_by.as_ref().map(|d| d.provider.as_str())).collect();
    let s_reference: Vec<_> = s.iter().map(|u| u.delivered_by.as_ref().map(|d| d.reference.as_str())).collect();
    let s_failed: Vec<_> = s.iter().map(|u| u.failed).collect();
    let s_local: Vec<_> = s.iter().map(|u| u.local_code_sent).collect();
    let e_user: Vec<_> = e.iter().map(|r| r.user_id.as_deref()).collect();
    let e_phone: Vec<_> = e.iter().map(|r| r.phone.as_str()).collect();
    let e_session: Vec<_> = e.iter().map(|r| r.session_id).collect();
    let e_event: Vec<_> = e.iter().map(|r| r.event.as_str()).collect();
    let e_status: Vec<_> = e.iter().map(|r| r.status.as_str()).collect();
    let e_provider: Vec<_> = e.iter().map(|r| r.provider.as_deref()).collect();
    let e_time: Vec<_> = e.iter().map(|r| r.response_time_ms).collect();
    let e_created: Vec<_> = e.iter().map(|r| r.created_at).collect();
    let params: [(&(dyn ToSql + Sync), Type); 29] = [
        (&a_id, Type::UUID_ARRAY),
        (&a_message, Type::UUID_ARRAY),
        (&a_session, Type::UUID_ARRAY),
        (&a_user, Type::TEXT_ARRAY),
        (&a_to, Type::TEXT_ARRAY),
        (&a_kind, Type::TEXT_ARRAY),
        (&a_provider, Type::TEXT_ARRAY),
        (&a_outcome, Type::TEXT_ARRAY),
        (&a_status, Type::INT4_ARRAY),
        (&a_error, Type::TEXT_ARRAY),
        (&a_ref, Type::TEXT_ARRAY),
        (&a_time, Type::INT4_ARRAY),
        (&a_ambiguous, Type::BOOL_ARRAY),
        (&a_created, Type::TIMESTAMPTZ_ARRAY),
        (&s_id, Type::UUID_ARRAY),
        (&refs, Type::JSONB_ARRAY),
        (&s_provider, Type::TEXT_ARRAY),
        (&s_reference, Type::TEXT_ARRAY),
        (&s_failed, Type::BOOL_ARRAY),
        (&s_local, Type::BOOL_ARRAY),
        (&e_user, Type::TEXT_ARRAY),
        (&e_phone, Type::TEXT_ARRAY),
        (&e_session, Type::UUID_ARRAY),
        (&e_event, Type::TEXT_ARRAY),
        (&e_status, Type::TEXT_ARRAY),
        (&e_provider, Type::TEXT_ARRAY),
        (&e_time, Type::INT4_ARRAY),
        (&e_created, Type::TIMESTAMPTZ_ARRAY),
        (&a_parts, Type::INT4_ARRAY),
    ];
    client.execute_typed(BATCH_SQL, &params).await?;
    Ok(())
}

const BATCH_SQL: &str = r#"
WITH attempts AS (
    INSERT INTO sms_messages_log (id, message_id, session_id, user_id, "to", type, provider_name,
                                  outcome, status_code, error, provider_ref, response_time_ms,
                                  ambiguous, created_at, parts, delivery_status, delivery_error, delivered_at)
    -- A receipt that arrived before its attempt row is written with the row.
    SELECT a.*, r.status, r.error_code, r.event_at
      FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                  $7::text[], $8::text[], $9::int4[], $10::text[], $11::text[], $12::int4[],
                  $13::bool[], $14::timestamptz[], $29::int4[])
           AS a(id, message_id, session_id, user_id, "to", type, provider_name, outcome, status_code, error,
                provider_ref, response_time_ms, ambiguous, created_at, parts)
      LEFT JOIN sms_receipts r ON r.provider = a.provider_name AND r.reference = a.provider_ref
), sessions AS (
    UPDATE sms_otp_sessions AS s
       SET provider_refs = s.provider_refs || u.refs,
           provider_name = COALESCE(u.provider, s.provider_name),
           provider_session_id = COALESCE(u.reference, s.provider_session_id),
           status = CASE WHEN u.failed AND s.status = 'pending' THEN 'failed' ELSE s.status END,
           local_code_sent = s.local_code_sent OR u.local_code_sent
      FROM UNNEST($15::uuid[], $16::jsonb[], $17::text[], $18::text[], $19::bool[], $20::bool[])
           AS u(id, refs, provider, reference, failed, local_code_sent)
     WHERE s.id = u.id
), events AS (
    INSERT INTO otp_logs (user_id, phone, session_id, type, status, provider, response_time_ms, created_at)
    SELECT * FROM UNNEST($21::text[], $22::text[], $23::uuid[], $24::text[], $25::text[], $26::text[],
                         $27::int4[], $28::timestamptz[])
)
SELECT 1
"#;
