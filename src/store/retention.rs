//! Retention (PostgreSQL): monthly partitions of `sms_messages_log` created ahead, so rows never
//! land in the default partition; partitions past `[retention] messages_months` exported as gzip
//! JSON Lines with a SHA-256 checksum file into `archive_dir`, then dropped; `otp_logs` rows past
//! `otp_logs_months` exported and deleted the same way; expired sessions and stale counters
//! purged. One instance at a time (`pg_try_advisory_lock`); `now` is the caller's clock.
//!
//! Archives hold log rows only: attempts (no text, no code) and OTP events (no code). Sessions,
//! which hold code HMACs, are deleted, never archived.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use deadpool_postgres::Pool;
use futures::{pin_mut, TryStreamExt};
use sha2::{Digest, Sha256};

use super::StoreError;
use crate::config::RetentionSettings;

/// First key of the `pg_try_advisory_lock(key, hashtext(current_schema()))` one run holds:
/// "smsr" in ASCII. The schema is the second, so deployments in other schemas do not wait.
const LOCK_KEY: i32 = 0x736d_7372;
/// Monthly partitions kept ready beyond the current month.
pub const MONTHS_AHEAD: u32 = 3;

/// The first day of a month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month(NaiveDate);

impl Month {
    pub fn of(t: DateTime<Utc>) -> Self {
        Self(NaiveDate::from_ymd_opt(t.year(), t.month(), 1).expect("the first of a month exists"))
    }

    /// `n` months later (earlier when negative).
    pub fn plus(self, n: i32) -> Self {
        let index = self.0.year() * 12 + self.0.month0() as i32 + n;
        Self(NaiveDate::from_ymd_opt(index.div_euclid(12), index.rem_euclid(12) as u32 + 1, 1).expect("in range"))
    }

    pub fn start(self) -> DateTime<Utc> {
        Utc.from_utc_datetime(&self.0.and_hms_opt(0, 0, 0).expect("midnight"))
    }

    /// `sms_messages_log_YYYY_MM`, as `smsgate_ensure_log_partitions` names them.
    pub fn partition(self) -> String {
        format!("sms_messages_log_{}", self.0.format("%Y_%m"))
    }

    /// The month a partition named by [`Month::partition`] holds.
    pub fn from_partition(name: &str) -> Option<Self> {
        let tail = name.strip_prefix("sms_messages_log_")?;
        let (y, m) = tail.split_once('_')?;
        Some(Self(NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, 1)?))
    }
}

/// What one run does (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Partitions to create, oldest first.
    pub create: Vec<String>,
    /// Partitions past retention, to archive and drop, oldest first.
    pub drop: Vec<String>,
    /// `otp_logs` rows older than this are archived and deleted; `None` keeps them.
    pub otp_logs_before: Option<DateTime<Utc>>,
    /// Sessions that expired before this are deleted.
    pub sessions_before: DateTime<Utc>,
    /// Archives go here; `None`: dropped without an archive.
    pub archive_dir: Option<PathBuf>,
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for p in &self.create {
            writeln!(f, "create partition {p}")?;
        }
        let into = match &self.archive_dir {
            Some(dir) => format!("archive into {}, then drop", dir.display()),
            None => "drop without an archive (no archive_dir)".into(),
        };
        for p in &self.drop {
            writeln!(f, "{into}: partition {p}")?;
        }
        if let Some(before) = self.otp_logs_before {
            writeln!(f, "{into}: otp_logs rows created before {}", before.to_rfc3339())?;
        }
        writeln!(
            f,
            "delete sessions that expired before {0}, and health's counts of sessions opened before {0}",
            self.sessions_before.to_rfc3339()
        )?;
        writeln!(f, "delete expired rate counters, idempotency keys and cooldowns")
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Done {
    pub created: Vec<String>,
    /// Archive files written (each with a `.sha256` beside it).
    pub archives: Vec<PathBuf>,
    pub dropped: Vec<String>,
    pub otp_logs_deleted: u64,
    pub sessions_deleted: u64,
    pub counters_deleted: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing the archive {path}")]
    Archive {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<tokio_postgres::Error> for RetentionError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Store(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for RetentionError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self::Store(e.into())
    }
}

/// Decides what a run at `now` does, given the partitions that exist.
pub fn plan(settings: &RetentionSettings, existing: &[String], now: DateTime<Utc>) -> Plan {
    let this = Month::of(now);
    let create = (0..=MONTHS_AHEAD as i32)
        .map(|i| this.plus(i).partition())
        .filter(|p| !existing.contains(p))
        .collect();
    let keep_from = this.plus(-(settings.messages_months as i32));
    let mut drop: Vec<_> = existing
        .iter()
        .filter_map(|p| Month::from_partition(p).map(|m| (m, p)))
        .filter(|(m, _)| settings.messages_months > 0 && *m < keep_from)
        .collect();
    drop.sort();
    Plan {
        create,
        drop: drop.into_iter().map(|(_, p)| p.clone()).collect(),
        otp_logs_before: match settings.otp_logs_months {
            0 => None,
            months => Some(this.plus(-(months as i32)).start()),
        },
        sessions_before: now - chrono::Duration::days(settings.sessions_days as i64),
        archive_dir: settings.archive_dir.clone(),
    }
}

/// The partitions of `sms_messages_log` (the default one aside).
async fn partitions(client: &deadpool_postgres::Object) -> Result<Vec<String>, RetentionError> {
    let rows = client
        .query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'sms_messages_log'::regclass",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| r.get(0))
        .filter(|n: &String| Month::from_partition(n).is_some())
        .collect())
}

/// What a run at `now` would do, without doing it.
pub async fn dry_run(pool: &Pool, settings: &RetentionSettings, now: DateTime<Utc>) -> Result<Plan, RetentionError> {
    let client = pool.get().await?;
    Ok(plan(settings, &partitions(&client).await?, now))
}

/// Runs retention at `now`; `None` when another instance holds the lock.
pub async fn run(pool: &Pool, settings: &RetentionSettings, now: DateTime<Utc>) -> Result<Option<Done>, RetentionError> {
    let client = pool.get().await?;
    let locked: bool = client
        .query_one("SELECT pg_try_advisory_lock($1, hashtext(current_schema()))", &[&LOCK_KEY])
        .await?
        .get(0);
    if !locked {
        return Ok(None);
    }
    let result = run_locked(&client, settings, now).await;
    client
        .execute("SELECT pg_advisory_unlock($1, hashtext(current_schema()))", &[&LOCK_KEY])
        .await?;
    result.map(Some)
}

async fn run_locked(client: &deadpool_postgres::Object, settings: &RetentionSettings, now: DateTime<Utc>) -> Result<Done, RetentionError> {
    let plan = plan(settings, &partitions(client).await?, now);
    let mut done = Done::default();
    for name in &plan.create {
        let month = Month::from_partition(name).expect("planned from a month");
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {name} PARTITION OF sms_messages_log FOR VALUES FROM ('{}') TO ('{}');
             ALTER TABLE {name} ENABLE ROW LEVEL SECURITY;",
            month.start().to_rfc3339(),
            month.plus(1).start().to_rfc3339()
        );
        match client.batch_execute(&sql).await {
            Ok(()) => done.created.push(name.clone()),
            // Rows of that month already sit in the default partition (it was not created in
            // time): leave them there and say so, rather than fail the whole run.
            Err(e) => tracing::warn!(error = ?e, partition = %name, "creating a log partition failed"),
        }
    }
    for name in &plan.drop {
        if let Some(dir) = &plan.archive_dir {
            let sql = format!("SELECT row_to_json(t)::text FROM {name} t ORDER BY created_at, id");
            done.archives
                .push(archive(client, &sql, &[], dir, &format!("{name}.jsonl.gz")).await?);
        }
        client.batch_execute(&format!("DROP TABLE {name}")).await?;
        done.dropped.push(name.clone());
    }
    done.otp_logs_deleted = otp_logs(client, &plan).await?;
    if settings.messages_months > 0 {
        // Receipts outlive no attempt they could still be matched to.
        let keep_from = Month::of(now).plus(-(settings.messages_months as i32)).start();
        client
            .execute("DELETE FROM sms_receipts WHERE received_at < $1", &[&keep_from])
            .await?;
    }
    // A session expires after it was made: the `created_at` bound selects no other rows, and
    // lets the scan use that index.
    done.sessions_deleted = client
        .execute(
            "DELETE FROM sms_otp_sessions WHERE created_at < $1 AND expires_at < $1",
            &[&plan.sessions_before],
        )
        .await?;
    // Health's counts of sessions are kept as long as the sessions.
    done.counters_deleted = client
        .execute("DELETE FROM provider_tallies WHERE opened < $1", &[&plan.sessions_before])
        .await?
        + client.execute("DELETE FROM rate_counters WHERE expires_at <= $1", &[&now]).await?
        + client
            .execute("DELETE FROM idempotency_keys WHERE expires_at <= $1", &[&now])
            .await?
        + client
            .execute(
                "DELETE FROM resend_cooldowns WHERE until <= $1::timestamptz - interval '1 day'",
                &[&now],
            )
            .await?;
    Ok(done)
}

/// Archives and deletes the `otp_logs` rows older than the plan's cut, up to the newest id seen
/// when the archive was read (rows written meanwhile wait for the next run).
async fn otp_logs(client: &deadpool_postgres::Object, plan: &Plan) -> Result<u64, RetentionError> {
    let Some(before) = plan.otp_logs_before else { return Ok(0) };
    let max_id: Option<i64> = client
        .query_one("SELECT max(id) FROM otp_logs WHERE created_at < $1", &[&before])
        .await?
        .get(0);
    let Some(max_id) = max_id else { return Ok(0) };
    if let Some(dir) = &plan.archive_dir {
        let sql = "SELECT row_to_json(t)::text FROM otp_logs t WHERE created_at < $1 AND id <= $2 ORDER BY id";
        let file = format!("otp_logs_before_{}.jsonl.gz", before.format("%Y_%m_%d"));
        archive(client, sql, &[&before, &max_id], dir, &file).await?;
    }
    Ok(client
        .execute("DELETE FROM otp_logs WHERE created_at < $1 AND id <= $2", &[&before, &max_id])
        .await?)
}

/// Streams `sql`'s one text column into `dir/file` as gzip JSON Lines, with `file.sha256`
/// (`sha256sum` format) beside it. Written under a temporary name and renamed once synced, so a
/// crash never leaves a partial archive under the final name.
async fn archive(
    client: &deadpool_postgres::Object,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    dir: &Path,
    file: &str,
) -> Result<PathBuf, RetentionError> {
    let path = dir.join(file);
    let io = |source| RetentionError::Archive {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join(format!(".{file}.tmp"));
    let out = std::fs::File::create(&tmp).map_err(io)?;
    let mut gz = flate2::write::GzEncoder::new(std::io::BufWriter::new(out), flate2::Compression::default());
    let rows = client.query_raw(sql, params.iter().copied()).await?;
    pin_mut!(rows);
    while let Some(row) = rows.try_next().await? {
        let line: String = row.get(0);
        gz.write_all(line.as_bytes()).map_err(io)?;
        gz.write_all(b"\n").map_err(io)?;
    }
    let out = gz.finish().map_err(io)?.into_inner().map_err(|e| io(e.into_error()))?;
    out.sync_all().map_err(io)?;
    let digest = hex::encode(Sha256::digest(std::fs::read(&tmp).map_err(io)?));
    std::fs::write(dir.join(format!("{file}.sha256")), format!("{digest}  {file}\n")).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(path)
}

/// Runs retention every hour on `pool`, at `clock`'s now. The first run waits a minute: start-up
/// already made this month's partitions and the next two (migrations), and creating one locks
/// the log table for a moment, which a starting instance's first sends need not meet.
pub fn spawn(pool: Pool, settings: RetentionSettings, clock: crate::clock::Clock) {
    tokio::spawn(async move {
        let hour = std::time::Duration::from_secs(3600);
        let first = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut tick = tokio::time::interval_at(first, hour);
        loop {
            tick.tick().await;
            match run(&pool, &settings, clock.now()).await {
                Ok(Some(done)) => tracing::info!(?done, "retention ran"),
                Ok(None) => tracing::debug!("retention: another instance holds the lock"),
                Err(e) => tracing::error!(error = ?e, "retention failed"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> RetentionSettings {
        RetentionSettings {
            messages_months: 6,
            otp_logs_months: 3,
            sessions_days: 30,
            archive_dir: Some("/tmp/a".into()),
        }
    }

    #[test]
    fn months_step_across_years() {
        let m = Month::of("2026-12-07T03:00:00Z".parse().unwrap());
        assert_eq!(m.partition(), "sms_messages_log_2026_12");
        assert_eq!(m.plus(1).partition(), "sms_messages_log_2027_01");
        assert_eq!(m.plus(-12).partition(), "sms_messages_log_2025_12");
        assert_eq!(Month::from_partition("sms_messages_log_2027_01"), Some(m.plus(1)));
        assert_eq!(Month::from_partition("sms_messages_log_default"), None);
    }

    #[test]
    fn a_plan_creates_missing_months_ahead_and_drops_what_is_past_retention() {
        let now = "2026-12-07T03:00:00Z".parse().unwrap();
        let existing: Vec<String> = ["2026_05", "2026_06", "2026_12", "2027_01"]
            .iter()
            .map(|m| format!("sms_messages_log_{m}"))
            .collect();
        let p = plan(&settings(), &existing, now);
        assert_eq!(p.create, vec!["sms_messages_log_2027_02", "sms_messages_log_2027_03"]);
        // Six months kept: June 2026 onwards.
        assert_eq!(p.drop, vec!["sms_messages_log_2026_05"]);
        assert_eq!(p.otp_logs_before, Some("2026-09-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()));
        assert_eq!(p.sessions_before, "2026-11-07T03:00:00Z".parse::<DateTime<Utc>>().unwrap());
        assert!(p.to_string().contains("create partition sms_messages_log_2027_02"));
    }

    #[test]
    fn zero_months_keeps_everything() {
        let keep = RetentionSettings {
            messages_months: 0,
            otp_logs_months: 0,
            ..settings()
        };
        let p = plan(&keep, &["sms_messages_log_2001_01".to_string()], Utc::now());
        assert!(p.drop.is_empty());
        assert_eq!(p.otp_logs_before, None);
        assert_eq!(p.create.len(), MONTHS_AHEAD as usize + 1);
    }
}
