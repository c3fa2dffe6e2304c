//! The PostgreSQL store. Each call is one statement; the attempt log goes through the
//! group-commit writer. No connection is held across a provider call.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::Row;
use uuid::Uuid;

use super::health::Verification;
use super::postgres_tls as tls;
use super::writer::LogWriter;
use super::{AttemptRow, ProviderRef, SendLog, Session, SessionEdit, SessionStatus, Store, StoreError};
use crate::config::DatabaseSettings;
use crate::metrics::Metrics;

pub struct PostgresStore {
    pool: Pool,
    /// The send path's connections (`batch_pool`).
    batches: Pool,
    writer: LogWriter,
    admission: super::admission::Batcher,
    answers: super::answers::Answers,
    /// The longest a call may take end to end, whatever the database does.
    call_limit: Duration,
}

const SESSION_COLUMNS: &str = "id, client, phone, user_id, purpose, code_hmac, provider_refs, status, attempts, max_attempts, \
     created_at, expires_at, verified_at, local_code_sent, verify_lease_until, verified_by";

impl PostgresStore {
    /// Connects a pool of `max_connections` to `url` with the default timeouts.
    pub fn connect(url: &str, max_connections: usize, metrics: Metrics) -> anyhow::Result<Self> {
        let settings = DatabaseSettings {
            pool_size: max_connections,
            ..DatabaseSettings::default()
        };
        Self::connect_with(url, &settings, metrics)
    }

    /// Connects a pool to `url` (a `postgres://` URL or key=value string) and starts the writer.
    /// Every wait is bounded: for a pooled connection (`pool_wait_ms`), for a new one
    /// (`connect_timeout_ms`), and for each statement (`statement_timeout_ms`, set on the
    /// connection so PostgreSQL cancels it, and enforced here too for a server that is gone).
    ///
    /// The send path's batches (admissions, attempt logs, keyed sends' answers) run on
    /// `BATCH_CONNECTIONS` connections of their own, besides the pool: a slow admin or health
    /// query never holds a connection a send waits for, and their statements always run the
    /// generic plan (see `batch_pool`).
    pub fn connect_with(url: &str, settings: &DatabaseSettings, metrics: Metrics) -> anyhow::Result<Self> {
        let pool = pool(url, settings, Some(settings.statement_timeout_ms), "")?;
        let batches = batch_pool(url, settings)?;
        let ms = Duration::from_millis;
        let call_limit = ms(settings.pool_wait_ms + settings.connect_timeout_ms + settings.statement_timeout_ms);
        let writer = LogWriter::spawn(batches.clone(), metrics, call_limit);
        let admission = super::admission::Batcher::spawn(batches.clone(), call_limit);
        let answers = super::answers::Answers::spawn(batches.clone(), call_limit);
        Ok(Self {
            pool,
            batches,
            writer,
            admission,
            answers,
            call_limit,
        })
    }

    /// Applies the migrations through a connection of their own with no statement timeout: a
    /// migration may rewrite a large table, and may wait for another instance's migration.
    pub async fn migrate(url: &str, settings: &DatabaseSettings) -> anyhow::Result<usize> {
        let settings = DatabaseSettings {
            pool_size: 1,
            ..settings.clone()
        };
        let pool = pool(url, &settings, None, "")?;
        Ok(super::migrate::run(&pool).await?)
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The connections the send path's batches run on.
    pub fn batch_pool(&self) -> &Pool {
        &self.batches
    }

    pub(super) fn admission(&self) -> &super::admission::Batcher {
        &self.admission
    }

    pub(super) fn answers(&self) -> &super::answers::Answers {
        &self.answers
    }

    /// Runs one store call within `call_limit`. PostgreSQL's `statement_timeout` cannot help when
    /// the server (or the network) stops answering; then the call fails with
    /// `StoreError::Timeout`, and the idle connections are dropped, since the one the call held
    /// is back among them and may never answer again.
    pub(super) async fn bounded<T>(&self, call: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        match tokio::time::timeout(self.call_limit, call).await {
            Ok(result) => result,
            Err(_) => {
                self.pool.retain(|_, _| false);
                Err(StoreError::Timeout(self.call_limit))
            }
        }
    }
}

/// Connections the send path's batchers hold at most at once: two group commits of the attempt
/// log, one group admission, one write of keyed sends' answers.
const BATCH_CONNECTIONS: usize = 4;

/// The send path's connections. Their statements take one array per column, and a batch's
/// length is all PostgreSQL's plan cache weighs when it picks a plan for them: after five
/// custom plans it keeps the generic one only if it does not look dearer than they did. A
/// connection whose first batches were single sends so planned every later batch afresh (the
/// group commit: 280 µs a plan, more than the statement itself, at 2,000 sends/s), and the
/// admission's check of its counters, inside `smsgate_admit_all`, did on every connection.
///
/// These statements read and write by key whatever a batch's length, so they run the generic
/// plan, always (`plan_cache_mode`). A generic plan is kept for the connection's life and made
/// once, maybe on a new database's empty tables, where a sequential scan looks cheapest: the
/// group commit's plan would then read all of `sms_receipts` for every batch, and keep doing so
/// as it grew. Without sequential scans (`enable_seqscan`) every table they touch is read by
/// its index, whatever its size when the plan was made.
fn batch_pool(url: &str, settings: &DatabaseSettings) -> anyhow::Result<Pool> {
    let settings = DatabaseSettings {
        pool_size: BATCH_CONNECTIONS,
        ..settings.clone()
    };
    pool(
        url,
        &settings,
        Some(settings.statement_timeout_ms),
        "-c plan_cache_mode=force_generic_plan -c enable_seqscan=off",
    )
}

/// A pool whose waits for a free or a new connection are bounded, whose connections cancel any
/// statement running longer than `statement_timeout_ms`, and start with the server `options`.
fn pool(url: &str, settings: &DatabaseSettings, statement_timeout_ms: Option<u64>, options: &str) -> anyhow::Result<Pool> {
    let (mut config, tls) = tls::configure(url, settings.ca_file.as_deref())?;
    let ms = Duration::from_millis;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(ms(settings.connect_timeout_ms));
    }
    // Appended to the URL's own options (tests set `search_path` there).
    let mut all = format!("{} {options}", config.get_options().unwrap_or_default());
    if let Some(timeout) = statement_timeout_ms {
        all.push_str(&format!(" -c statement_timeout={timeout}"));
    }
    let all = all.split_whitespace().collect::<Vec<_>>().join(" ");
    if !all.is_empty() {
        config.options(&all);
    }
    let manager = Manager::from_config(
        config,
        tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(settings.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(ms(settings.pool_wait_ms)))
        // The connect timeout bounds each address tried; this bounds the whole start-up.
        .create_timeout(Some(ms(settings.connect_timeout_ms)))
        .recycle_timeout(Some(ms(settings.connect_timeout_ms)))
        .build()?)
}

fn session_from_row(row: &Row) -> Result<Session, StoreError> {
    let refs: serde_json::Value = row.get("provider_refs");
    let provider_refs: Vec<ProviderRef> = serde_json::from_value(refs).map_err(|_| StoreError::Corrupt("provider_refs"))?;
    let status: String = row.get("status");
    Ok(Session {
        id: row.get("id"),
        client: row.get("client"),
        phone: row.get("phone"),
        user_id: row.get("user_id"),
        purpose: row.get("purpose"),
        code_hmac: row.get("code_hmac"),
        provider_refs,
        status: SessionStatus::parse(&status).ok_or(StoreError::Corrupt("status"))?,
        attempts: row.get::<_, i32>("attempts").max(0) as u32,
        max_attempts: row.get::<_, i32>("max_attempts").max(0) as u32,
        created_at: row.get("created_at"),
        expires_at: row.get("expires_at"),
        verified_at: row.get("verified_at"),
        local_code_sent: row.get("local_code_sent"),
        verify_lease_until: row.get("verify_lease_until"),
        verified_by: row.get("verified_by"),
    })
}

/// A session edit that leaves its verification as it was.
const UPDATE_SESSION: &str = "UPDATE sms_otp_sessions
    SET status = $2, attempts = $3, verified_at = $4, verify_lease_until = $5, verified_by = $6
  WHERE id = $1";

/// The same edit when it changes whether, by whose code or when the session was verified: health's
/// counts for each provider that carried it (migration 0016) move by the difference, in the same
/// statement. `$7`..`$10`: verified now; verified, by whom and when before.
const VERIFY_SESSION: &str = r#"
WITH s AS (
    UPDATE sms_otp_sessions
       SET status = $2, attempts = $3, verified_at = $4, verify_lease_until = $5, verified_by = $6
     WHERE id = $1
 RETURNING created_at, phone, carriers, first_carrier
)
INSERT INTO provider_tallies AS t (opened, provider, prefix, writer, sent_verified, verified, delay_secs)
SELECT date_bin('10 seconds', s.created_at, 'epoch'), p.provider, left(s.phone, 5), pg_backend_pid(),
       n.verified::int - o.verified::int, n.credited::int - o.credited::int,
       CASE WHEN n.credited THEN n.delay ELSE 0 END - CASE WHEN o.credited THEN o.delay ELSE 0 END
  FROM s, unnest(s.carriers) AS p(provider),
       LATERAL (SELECT $7::bool, $7::bool AND coalesce($6 = p.provider, p.provider = s.first_carrier, false),
                       coalesce(extract(epoch FROM $4 - s.created_at)::float8, 0)) AS n(verified, credited, delay),
       LATERAL (SELECT $8::bool, $8::bool AND coalesce($9::text = p.provider, p.provider = s.first_carrier, false),
                       coalesce(extract(epoch FROM $10::timestamptz - s.created_at)::float8, 0)) AS o(verified, credited, delay)
ON CONFLICT (opened, provider, prefix, writer) DO UPDATE
   SET sent_verified = t.sent_verified + EXCLUDED.sent_verified, verified = t.verified + EXCLUDED.verified,
       delay_secs = t.delay_secs + EXCLUDED.delay_secs"#;

#[async_trait]
impl Store for PostgresStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.bounded(async move {
            let client = self.pool.get().await?;
            client.simple_query("SELECT 1").await?;
            Ok(())
        })
        .await
    }

    async fn insert_session(&self, s: &Session) -> Result<(), StoreError> {
        self.bounded(async move {
            let client = self.pool.get().await?;
            let stmt = client
                .prepare_cached(
                    "INSERT INTO sms_otp_sessions (id, phone, user_id, purpose, code_hmac, provider_refs, status, attempts,
                                                   max_attempts, created_at, expires_at, client, local_code_sent, verify_lease_until,
                                                   verified_by)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                )
                .await?;
            let refs = serde_json::to_value(&s.provider_refs).unwrap_or_default();
            client
                .execute(
                    &stmt,
                    &[
                        &s.id,
                        &s.phone,
                        &s.user_id,
                        &s.purpose,
                        &s.code_hmac,
                        &refs,
                        &s.status.as_str(),
                        &(s.attempts as i32),
                        &(s.max_attempts as i32),
                        &s.created_at,
                        &s.expires_at,
                        &s.client,
                        &s.local_code_sent,
                        &s.verify_lease_until,
                        &s.verified_by,
                    ],
                )
                .await?;
            Ok(())
        })
        .await
    }

    async fn get_session(&self, id: Uuid) -> Result<Option<Session>, StoreError> {
        self.bounded(async move {
            let client = self.pool.get().await?;
            let stmt = client
                .prepare_cached(&format!("SELECT {SESSION_COLUMNS} FROM sms_otp_sessions WHERE id = $1"))
                .await?;
            client.query_opt(&stmt, &[&id]).await?.as_ref().map(session_from_row).transpose()
        })
        .await
    }

    async fn write_log(&self, log: SendLog) -> Result<(), StoreError> {
        self.bounded(async move { self.writer.write(log).await }).await
    }

    async fn adopt_unowned(&self, owner: &str) -> Result<u64, StoreError> {
        self.bounded(async move {
            let client = self.pool.get().await?;
            let sessions = client
                .execute("UPDATE sms_otp_sessions SET client = $1 WHERE client = ''", &[&owner])
                .await?;
            let contacts = client
                .execute("UPDATE user_contact_settings SET client = $1 WHERE client = ''", &[&owner])
                .await?;
            Ok(sessions + contacts)
        })
        .await
    }

    async fn newest_session_holding(&self, phone: &str, provider: &str) -> Result<Option<Uuid>, StoreError> {
        self.bounded(async move {
            let client = self.pool.get().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT id FROM sms_otp_sessions
                      WHERE phone = $1 AND provider_refs @> jsonb_build_array(jsonb_build_object('provider', $2::text))
                      ORDER BY created_at DESC LIMIT 1",
                )
                .await?;
            Ok(client.query_opt(&stmt, &[&phone, &provider]).await?.map(|r| r.get(0)))
        })
        .await
    }

    async fn update_session(&self, id: Uuid, edit: SessionEdit<'_>) -> Result<Option<Session>, StoreError> {
        self.bounded(async move {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            let select = tx
                .prepare_cached(&format!("SELECT {SESSION_COLUMNS} FROM sms_otp_sessions WHERE id = $1 FOR UPDATE"))
                .await?;
            let Some(row) = tx.query_opt(&select, &[&id]).await? else {
                return Ok(None);
            };
            let mut session = session_from_row(&row)?;
            let before = Verification::of(&session);
            if edit(&mut session) {
                let after = Verification::of(&session);
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
                    &id,
                    &session.status.as_str(),
                    &(session.attempts.min(i32::MAX as u32) as i32),
                    &session.verified_at,
                    &session.verify_lease_until,
                    &session.verified_by,
                ];
                if before == after {
                    tx.execute(&tx.prepare_cached(UPDATE_SESSION).await?, &params).await?;
                } else {
                    let was: [&(dyn tokio_postgres::types::ToSql + Sync); 4] = [&after.verified, &before.verified, &before.by, &before.at];
                    let params: Vec<_> = params.iter().chain(&was).copied().collect();
                    tx.execute(&tx.prepare_cached(VERIFY_SESSION).await?, &params).await?;
                }
            }
            tx.commit().await?;
            Ok(Some(session))
        })
        .await
    }

    async fn recent_attempts(&self, limit: usize) -> Result<Vec<AttemptRow>, StoreError> {
        self.bounded(async move {
            let client = self.pool.get().await?;
            let rows = client
                .query(
                    &format!("SELECT {ATTEMPT_COLUMNS} FROM sms_messages_log ORDER BY created_at DESC LIMIT $1"),
                    &[&(limit as i64)],
                )
                .await?;
            Ok(rows.iter().map(attempt_from_row).collect())
        })
        .await
    }
}

/// The columns `attempt_from_row` reads, in its order.
pub(super) const ATTEMPT_COLUMNS: &str = r#"id, message_id, session_id, user_id, "to", type, provider_name, outcome, status_code, error,
    provider_ref, response_time_ms, ambiguous, created_at, parts, delivery_status, delivery_error, delivered_at"#;

/// An attempt row selected with `ATTEMPT_COLUMNS`.
pub(super) fn attempt_from_row(r: &tokio_postgres::Row) -> AttemptRow {
    AttemptRow {
        id: r.get(0),
        message_id: r.get(1),
        session_id: r.get(2),
        user_id: r.get(3),
        to: r.get(4),
        kind: r.get(5),
        provider: r.get(6),
        outcome: r.get(7),
        http_status: r.get(8),
        error: r.get(9),
        provider_ref: r.get(10),
        response_time_ms: r.get(11),
        ambiguous: r.get(12),
        created_at: r.get(13),
        parts: r.get(14),
        delivery: super::receipts::delivery_from(r.get(15), r.get(16), r.get(17)),
    }
}
