//! The provider registry in the database (`api_integrations`), its version counter and the admin
//! audit log. The store only reads and writes rows: what a change may do is decided in `admin`.
//! A change commits with its audit rows and a `NOTIFY smsgate_registry` that PostgreSQL delivers
//! at commit, so every instance hears of it once it is visible, never before.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MemoryStore, PostgresStore, StoreError};

/// The channel every instance `LISTEN`s on; the payload is `<schema>:<version>`.
pub const REGISTRY_CHANNEL: &str = "smsgate_registry";

/// One row of `api_integrations`. `config` holds the entry's keys other than name, kind,
/// priority and enabled; `secret_ciphertext` the sealed secrets (see `admin::secrets`).
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryRow {
    pub name: String,
    pub kind: String,
    pub priority: i32,
    pub enabled: bool,
    pub config: serde_json::Value,
    pub secret_key_id: Option<String>,
    pub secret_ciphertext: Option<Vec<u8>>,
}

/// The registry as committed: every row and the version of the last change.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRegistry {
    pub version: i64,
    pub rows: Vec<RegistryRow>,
}

/// One row of `admin_audit_log`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// A change to commit: rows to write whole, names to delete, and what the audit log says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegistryCommit {
    /// The version the change was decided on; another change in between refuses it.
    pub expected_version: i64,
    pub upserts: Vec<RegistryRow>,
    pub deletes: Vec<String>,
    /// `(actor, action, target, before, after)` of each audit row.
    pub audit: Vec<AuditNote>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditNote {
    pub actor: String,
    pub action: String,
    pub target: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// The provider registry's rows; part of every `Store`. The memory store has no registry: the
/// configuration file stays the truth there.
#[async_trait]
pub trait RegistryStore: Send + Sync {
    /// The committed registry; `None` when this store keeps none (memory).
    async fn load_registry(&self) -> Result<Option<StoredRegistry>, StoreError>;
    /// Writes `seed` (and its audit note) only while `api_integrations` is empty; returns whether
    /// it did. Instances starting together seed once.
    async fn seed_registry(&self, seed: &RegistryCommit) -> Result<bool, StoreError>;
    /// Commits `change` with its audit rows and notifies every instance; returns the new version,
    /// or `None` when the registry moved past `expected_version` (decide again and retry).
    async fn commit_registry(&self, change: &RegistryCommit) -> Result<Option<i64>, StoreError>;
    /// Audit rows with an id below `before` (all when `None`), newest first.
    async fn audit_page(&self, before: Option<i64>, limit: i64) -> Result<Vec<AuditEntry>, StoreError>;
}

#[async_trait]
impl RegistryStore for MemoryStore {
    async fn load_registry(&self) -> Result<Option<StoredRegistry>, StoreError> {
        Ok(None)
    }

    async fn seed_registry(&self, _seed: &RegistryCommit) -> Result<bool, StoreError> {
        Ok(false)
    }

    async fn commit_registry(&self, _change: &RegistryCommit) -> Result<Option<i64>, StoreError> {
        Err(StoreError::Corrupt("the memory store keeps no provider registry"))
    }

    async fn audit_page(&self, _before: Option<i64>, _limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(Vec::new())
    }
}

const ROW_COLUMNS: &str = "name, kind, priority, enabled, config, secret_key_id, secret_ciphertext";

#[async_trait]
impl RegistryStore for PostgresStore {
    async fn load_registry(&self) -> Result<Option<StoredRegistry>, StoreError> {
        self.bounded(async move {
            let mut client = self.pool().get().await?;
            // One snapshot: the version and the rows it counts.
            let tx = client
                .build_transaction()
                .read_only(true)
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .start()
                .await?;
            let version: i64 = tx.query_one("SELECT version FROM registry_version", &[]).await?.get(0);
            let rows = tx
                .query(&format!("SELECT {ROW_COLUMNS} FROM api_integrations ORDER BY priority, name"), &[])
                .await?;
            tx.commit().await?;
            let rows = rows
                .iter()
                .map(|r| RegistryRow {
                    name: r.get(0),
                    kind: r.get(1),
                    priority: r.get(2),
                    enabled: r.get(3),
                    config: r.get(4),
                    secret_key_id: r.get(5),
                    secret_ciphertext: r.get(6),
                })
                .collect();
            Ok(Some(StoredRegistry { version, rows }))
        })
        .await
    }

    async fn seed_registry(&self, seed: &RegistryCommit) -> Result<bool, StoreError> {
        self.bounded(async move {
            let mut client = self.pool().get().await?;
            let tx = client.transaction().await?;
            // Serialises instances seeding at once; the counter row is the lock.
            tx.execute("SELECT version FROM registry_version FOR UPDATE", &[]).await?;
            let existing: i64 = tx.query_one("SELECT count(*) FROM api_integrations", &[]).await?.get(0);
            if existing > 0 {
                return Ok(false);
            }
            write(&tx, seed).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn commit_registry(&self, change: &RegistryCommit) -> Result<Option<i64>, StoreError> {
        self.bounded(async move {
            let mut client = self.pool().get().await?;
            let tx = client.transaction().await?;
            let current: i64 = tx.query_one("SELECT version FROM registry_version FOR UPDATE", &[]).await?.get(0);
            if current != change.expected_version {
                return Ok(None);
            }
            let version = write(&tx, change).await?;
            tx.commit().await?;
            Ok(Some(version))
        })
        .await
    }

    async fn audit_page(&self, before: Option<i64>, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        self.bounded(async move {
            let client = self.pool().get().await?;
            let rows = client
                .query(
                    "SELECT id, at, actor, action, target, before, after FROM admin_audit_log
                     WHERE $1::bigint IS NULL OR id < $1 ORDER BY id DESC LIMIT $2",
                    &[&before, &limit],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| AuditEntry {
                    id: r.get(0),
                    at: r.get(1),
                    actor: r.get(2),
                    action: r.get(3),
                    target: r.get(4),
                    before: r.get(5),
                    after: r.get(6),
                })
                .collect())
        })
        .await
    }
}

/// Applies `change` in `tx`: bumps the version, writes and deletes rows, appends the audit rows,
/// and queues the notification (sent by PostgreSQL at commit). Returns the new version.
async fn write(tx: &tokio_postgres::Transaction<'_>, change: &RegistryCommit) -> Result<i64, StoreError> {
    let version: i64 = tx
        .query_one("UPDATE registry_version SET version = version + 1 RETURNING version", &[])
        .await?
        .get(0);
    for name in &change.deletes {
        tx.execute("DELETE FROM api_integrations WHERE name = $1", &[name]).await?;
    }
    for r in &change.upserts {
        tx.execute(
            "INSERT INTO api_integrations (name, kind, priority, enabled, config, secret_key_id, secret_ciphertext, version, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now())
             ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind, priority = EXCLUDED.priority,
                 enabled = EXCLUDED.enabled, config = EXCLUDED.config, secret_key_id = EXCLUDED.secret_key_id,
                 secret_ciphertext = EXCLUDED.secret_ciphertext, version = EXCLUDED.version, updated_at = now()",
            &[
                &r.name,
                &r.kind,
                &r.priority,
                &r.enabled,
                &r.config,
                &r.secret_key_id,
                &r.secret_ciphertext,
                &version,
            ],
        )
        .await?;
    }
    for a in &change.audit {
        tx.execute(
            "INSERT INTO admin_audit_log (actor, action, target, before, after) VALUES ($1, $2, $3, $4, $5)",
            &[&a.actor, &a.action, &a.target, &a.before, &a.after],
        )
        .await?;
    }
    tx.execute(
        &format!("SELECT pg_notify('{REGISTRY_CHANNEL}', current_schema() || ':' || $1::bigint::text)"),
        &[&version],
    )
    .await?;
    Ok(version)
}
