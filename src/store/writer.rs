//! Group commit: attempt rows, new sessions, session updates and OTP events of all concurrent sends are
//! written by one statement (`INSERT … SELECT FROM UNNEST`), then each waiting send is answered.
//! While one batch commits the next one gathers, so durability does not cost throughput.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::health::{period, prefix};
use super::{ProviderRef, SendLog, Session, SessionStatus, SessionUpdate, StoreError};
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
            Err(e) if range.len() > 1 && e.blames_the_rows() => {
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

/// One statement for the whole batch: its data-modifying CTEs commit together. Each session
/// written also learns which provider took the SMS (`carriers`; `first_carrier` for its first
/// SMS), and health's counts learn the same (`provider_tallies`).
///
/// A batch of new sends only inserts, and runs the prepared statement. A batch that updates
/// sessions stored earlier (a resend) goes as an unnamed typed statement, planned with the
/// tables as they are: a generic plan cached while `sms_otp_sessions` was small (a new database)
/// joins the updates by a sequential scan, and kept doing so as the table grew.
async fn commit(pool: &Pool, logs: &[&SendLog]) -> Result<(), StoreError> {
    use tokio_postgres::types::{ToSql, Type};
    let client = pool.get().await?;
    let a: Vec<_> = logs.iter().flat_map(|l| l.attempts.iter()).collect();
    let mut opened: Vec<(Session, Option<&ProviderRef>, Carried<'_>)> = Vec::new();
    let mut updates: Vec<(&SessionUpdate, Carried<'_>)> = Vec::new();
    for log in logs {
        match (&log.opened, &log.session) {
            (Some(session), Some(update)) if update.id == session.id => {
                let mut session = session.clone();
                update.apply(&mut session);
                let carried = Carried::of(log, session.id);
                opened.push((session, update.delivered_by.as_ref(), carried));
            }
            (opened_session, update) => {
                opened.extend(opened_session.iter().map(|s| (s.clone(), None, Carried::of(log, s.id))));
                updates.extend(update.iter().map(|u| (u, Carried::of(log, u.id))));
            }
        }
    }
    let e: Vec<_> = logs.iter().flat_map(|l| l.events.iter()).collect();
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
    let u_id: Vec<_> = updates.iter().map(|(u, _)| u.id).collect();
    let u_refs: Vec<serde_json::Value> = updates
        .iter()
        .map(|(u, _)| serde_json::to_value(&u.add_refs).unwrap_or_default())
        .collect();
    let u_provider: Vec<_> = updates
        .iter()
        .map(|(u, _)| u.delivered_by.as_ref().map(|d| d.provider.as_str()))
        .collect();
    let u_reference: Vec<_> = updates
        .iter()
        .map(|(u, _)| u.delivered_by.as_ref().map(|d| d.reference.as_str()))
        .collect();
    let u_failed: Vec<_> = updates.iter().map(|(u, _)| u.failed).collect();
    let u_local: Vec<_> = updates.iter().map(|(u, _)| u.local_code_sent).collect();
    let u_carrier: Vec<_> = updates.iter().map(|(_, c)| c.carrier).collect();
    let u_first: Vec<_> = updates.iter().map(|(_, c)| c.first).collect();
    let e_user: Vec<_> = e.iter().map(|r| r.user_id.as_deref()).collect();
    let e_phone: Vec<_> = e.iter().map(|r| r.phone.as_str()).collect();
    let e_session: Vec<_> = e.iter().map(|r| r.session_id).collect();
    let e_event: Vec<_> = e.iter().map(|r| r.event.as_str()).collect();
    let e_status: Vec<_> = e.iter().map(|r| r.status.as_str()).collect();
    let e_provider: Vec<_> = e.iter().map(|r| r.provider.as_deref()).collect();
    let e_time: Vec<_> = e.iter().map(|r| r.response_time_ms).collect();
    let e_created: Vec<_> = e.iter().map(|r| r.created_at).collect();
    let o_id: Vec<_> = opened.iter().map(|(s, _, _)| s.id).collect();
    let o_phone: Vec<_> = opened.iter().map(|(s, _, _)| s.phone.as_str()).collect();
    let o_user: Vec<_> = opened.iter().map(|(s, _, _)| s.user_id.as_deref()).collect();
    let o_purpose: Vec<_> = opened.iter().map(|(s, _, _)| s.purpose.as_str()).collect();
    let o_hmac: Vec<_> = opened.iter().map(|(s, _, _)| s.code_hmac.as_slice()).collect();
    let o_refs: Vec<serde_json::Value> = opened
        .iter()
        .map(|(s, _, _)| serde_json::to_value(&s.provider_refs).unwrap_or_default())
        .collect();
    let o_provider: Vec<_> = opened.iter().map(|(_, d, _)| d.map(|d| d.provider.as_str())).collect();
    let o_reference: Vec<_> = opened.iter().map(|(_, d, _)| d.map(|d| d.reference.as_str())).collect();
    let o_status: Vec<_> = opened.iter().map(|(s, _, _)| s.status.as_str()).collect();
    let o_max: Vec<_> = opened.iter().map(|(s, _, _)| s.max_attempts.min(i32::MAX as u32) as i32).collect();
    let o_created: Vec<_> = opened.iter().map(|(s, _, _)| s.created_at).collect();
    let o_expires: Vec<_> = opened.iter().map(|(s, _, _)| s.expires_at).collect();
    let o_client: Vec<_> = opened.iter().map(|(s, _, _)| s.client.as_str()).collect();
    let o_local: Vec<_> = opened.iter().map(|(s, _, _)| s.local_code_sent).collect();
    let o_carrier: Vec<_> = opened.iter().map(|(_, _, c)| c.carrier).collect();
    let o_first: Vec<_> = opened.iter().map(|(_, _, c)| c.first).collect();
    let t = OpenedTallies::of(&opened);
    let params: [(&(dyn ToSql + Sync), Type); 53] = [
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
        (&u_id, Type::UUID_ARRAY),
        (&u_refs, Type::JSONB_ARRAY),
        (&u_provider, Type::TEXT_ARRAY),
        (&u_reference, Type::TEXT_ARRAY),
        (&u_failed, Type::BOOL_ARRAY),
        (&u_local, Type::BOOL_ARRAY),
        (&e_user, Type::TEXT_ARRAY),
        (&e_phone, Type::TEXT_ARRAY),
        (&e_session, Type::UUID_ARRAY),
        (&e_event, Type::TEXT_ARRAY),
        (&e_status, Type::TEXT_ARRAY),
        (&e_provider, Type::TEXT_ARRAY),
        (&e_time, Type::INT4_ARRAY),
        (&e_created, Type::TIMESTAMPTZ_ARRAY),
        (&a_parts, Type::INT4_ARRAY),
        (&o_id, Type::UUID_ARRAY),
        (&o_phone, Type::TEXT_ARRAY),
        (&o_user, Type::TEXT_ARRAY),
        (&o_purpose, Type::TEXT_ARRAY),
        (&o_hmac, Type::BYTEA_ARRAY),
        (&o_refs, Type::JSONB_ARRAY),
        (&o_provider, Type::TEXT_ARRAY),
        (&o_reference, Type::TEXT_ARRAY),
        (&o_status, Type::TEXT_ARRAY),
        (&o_max, Type::INT4_ARRAY),
        (&o_created, Type::TIMESTAMPTZ_ARRAY),
        (&o_expires, Type::TIMESTAMPTZ_ARRAY),
        (&o_client, Type::TEXT_ARRAY),
        (&o_local, Type::BOOL_ARRAY),
        (&u_carrier, Type::TEXT_ARRAY),
        (&u_first, Type::TEXT_ARRAY),
        (&o_carrier, Type::TEXT_ARRAY),
        (&o_first, Type::TEXT_ARRAY),
        (&t.opened, Type::TIMESTAMPTZ_ARRAY),
        (&t.provider, Type::TEXT_ARRAY),
        (&t.prefix, Type::TEXT_ARRAY),
        (&t.sent, Type::INT8_ARRAY),
        (&t.sent_verified, Type::INT8_ARRAY),
        (&t.verified, Type::INT8_ARRAY),
    ];
    if updates.is_empty() {
        let types: Vec<Type> = params.iter().map(|(_, t)| t.clone()).collect();
        let stmt = client.prepare_typed_cached(&NEW_SESSIONS_SQL, &types).await?;
        let values: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(v, _)| *v).collect();
        client.execute(&stmt, &values).await?;
    } else {
        client.execute_typed(&UPDATES_SQL, &params).await?;
    }
    Ok(())
}

/// Health's counts of the sessions a batch opens (migration 0016), summed here per ten seconds,
/// provider and prefix, so that the statement writes each of its rows once without grouping.
#[derive(Default)]
struct OpenedTallies<'a> {
    opened: Vec<DateTime<Utc>>,
    provider: Vec<&'a str>,
    prefix: Vec<&'a str>,
    sent: Vec<i64>,
    sent_verified: Vec<i64>,
    verified: Vec<i64>,
}

impl<'a> OpenedTallies<'a> {
    fn of(opened: &'a [(Session, Option<&ProviderRef>, Carried<'a>)]) -> Self {
        let mut counts: BTreeMap<(DateTime<Utc>, &str, &str), [i64; 3]> = BTreeMap::new();
        for (s, _, c) in opened {
            let Some(provider) = c.carrier else { continue };
            let verified = s.status == SessionStatus::Verified;
            let n = counts.entry((period(s.created_at), provider, prefix(&s.phone))).or_default();
            n[0] += 1;
            n[1] += i64::from(verified);
            n[2] += i64::from(verified && c.first == Some(provider));
        }
        let mut t = Self::default();
        for ((opened, provider, prefix), [sent, sent_verified, verified]) in counts {
            t.opened.push(opened);
            t.provider.push(provider);
            t.prefix.push(prefix);
            t.sent.push(sent);
            t.sent_verified.push(sent_verified);
            t.verified.push(verified);
        }
        t
    }
}

/// The statement for a batch that only opens sessions: its attempts, sessions, OTP events and
/// their counts. `UPDATES_SQL` adds the session updates.
static NEW_SESSIONS_SQL: LazyLock<String> = LazyLock::new(|| format!("{ATTEMPTS}{REST}{OPENED_TALLIES}SELECT 1"));

/// The statement for a batch that also updates sessions stored earlier (resends).
static UPDATES_SQL: LazyLock<String> = LazyLock::new(|| format!("{ATTEMPTS}{UPDATES}{REST}{UPDATED_TALLIES}SELECT 1"));

// The pieces of those statements, in order: each closes the CTE before it (`), `).
const ATTEMPTS: &str = r#"
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
"#;

const UPDATES: &str = r#"
), sessions AS (
    UPDATE sms_otp_sessions AS s
       SET provider_refs = s.provider_refs || u.refs,
           provider_name = COALESCE(u.provider, s.provider_name),
           provider_session_id = COALESCE(u.reference, s.provider_session_id),
           status = CASE WHEN u.failed AND s.status = 'pending' THEN 'failed' ELSE s.status END,
           local_code_sent = s.local_code_sent OR u.local_code_sent,
           carriers = CASE WHEN u.carrier IS NULL OR u.carrier = ANY (s.carriers) THEN s.carriers
                           ELSE s.carriers || u.carrier END,
           first_carrier = COALESCE(s.first_carrier, u.first)
      FROM UNNEST($15::uuid[], $16::jsonb[], $17::text[], $18::text[], $19::bool[], $20::bool[], $44::text[], $45::text[])
           AS u(id, refs, provider, reference, failed, local_code_sent, carrier, first)
     WHERE s.id = u.id
"#;

const REST: &str = r#"
), opened AS (
    INSERT INTO sms_otp_sessions (id, phone, user_id, purpose, code_hmac, provider_refs, provider_name,
                                  provider_session_id, status, max_attempts, created_at, expires_at,
                                  client, local_code_sent, carriers, first_carrier)
    SELECT id, phone, user_id, purpose, code_hmac, provider_refs, provider_name, provider_session_id, status,
           max_attempts, created_at, expires_at, client, local_code_sent,
           CASE WHEN carrier IS NULL THEN '{}' ELSE ARRAY[carrier] END, first
      FROM UNNEST($30::uuid[], $31::text[], $32::text[], $33::text[], $34::bytea[], $35::jsonb[],
                  $36::text[], $37::text[], $38::text[], $39::int4[], $40::timestamptz[],
                  $41::timestamptz[], $42::text[], $43::bool[], $46::text[], $47::text[])
           AS o(id, phone, user_id, purpose, code_hmac, provider_refs, provider_name, provider_session_id,
                status, max_attempts, created_at, expires_at, client, local_code_sent, carrier, first)
), events AS (
    INSERT INTO otp_logs (user_id, phone, session_id, type, status, provider, response_time_ms, created_at)
    SELECT * FROM UNNEST($21::text[], $22::text[], $23::uuid[], $24::text[], $25::text[], $26::text[],
                         $27::int4[], $28::timestamptz[])
"#;

/// Health's counts (migration 0016), in this connection's own rows: the opened sessions', summed
/// by `OpenedTallies`.
const OPENED_TALLIES: &str = r#"
), tallies AS (
    INSERT INTO provider_tallies AS t (opened, provider, prefix, writer, sent, sent_verified, verified)
    SELECT c.opened, c.provider, c.prefix, pg_backend_pid(), c.sent, c.sent_verified, c.verified
      FROM UNNEST($48::timestamptz[], $49::text[], $50::text[], $51::int8[], $52::int8[], $53::int8[])
           AS c(opened, provider, prefix, sent, sent_verified, verified)
    ON CONFLICT (opened, provider, prefix, writer) DO UPDATE
       SET sent = t.sent + EXCLUDED.sent, sent_verified = t.sent_verified + EXCLUDED.sent_verified,
           verified = t.verified + EXCLUDED.verified
)
"#;

/// The same with the updated sessions': one counts for a provider it had not had (the update
/// above adds it to `carriers`; every CTE reads the rows as they were before the statement).
const UPDATED_TALLIES: &str = r#"
), tallies AS (
    INSERT INTO provider_tallies AS t (opened, provider, prefix, writer, sent, sent_verified, verified)
    SELECT c.opened, c.provider, c.prefix, pg_backend_pid(), sum(c.sent), sum(c.sent_verified), sum(c.verified)
      FROM (SELECT * FROM UNNEST($48::timestamptz[], $49::text[], $50::text[], $51::int8[], $52::int8[], $53::int8[])
             UNION ALL
            SELECT date_bin('10 seconds', s.created_at, 'epoch'), u.carrier, left(s.phone, 5), 1::int8,
                   (s.status = 'verified')::int::int8, 0::int8
              FROM (SELECT DISTINCT * FROM UNNEST($15::uuid[], $44::text[])) AS u(id, carrier)
              JOIN sms_otp_sessions AS s ON s.id = u.id
             WHERE u.carrier IS NOT NULL AND u.carrier <> ALL (s.carriers))
           AS c(opened, provider, prefix, sent, sent_verified, verified)
     GROUP BY 1, 2, 3
    ON CONFLICT (opened, provider, prefix, writer) DO UPDATE
       SET sent = t.sent + EXCLUDED.sent, sent_verified = t.sent_verified + EXCLUDED.sent_verified,
           verified = t.verified + EXCLUDED.verified
)
"#;

/// Which provider took the SMS a send log carries for a session: the router stops at the first
/// provider that accepts, so a message has at most one. `first` when that message was the
/// session's first SMS (its id is the session's).
#[derive(Clone, Copy)]
struct Carried<'a> {
    carrier: Option<&'a str>,
    first: Option<&'a str>,
}

impl<'a> Carried<'a> {
    fn of(log: &'a SendLog, session: uuid::Uuid) -> Self {
        let accepted = log
            .attempts
            .iter()
            .find(|a| a.outcome == "accepted" && a.session_id == Some(session));
        Self {
            carrier: accepted.map(|a| a.provider.as_str()),
            first: accepted.filter(|a| a.message_id == session).map(|a| a.provider.as_str()),
        }
    }
}
