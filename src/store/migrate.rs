//! Applies `migrations/*.sql` in order, once each, under an advisory lock so that instances
//! starting together do not race.

use deadpool_postgres::Pool;

use super::StoreError;

/// (version, name, SQL) of every migration, in order.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "0001_core", include_str!("../../migrations/0001_core.sql")),
    (2, "0002_limits", include_str!("../../migrations/0002_limits.sql")),
    (3, "0003_rls", include_str!("../../migrations/0003_rls.sql")),
    (4, "0004_tenancy_verify", include_str!("../../migrations/0004_tenancy_verify.sql")),
    (5, "0005_registry_audit", include_str!("../../migrations/0005_registry_audit.sql")),
    (6, "0006_admission", include_str!("../../migrations/0006_admission.sql")),
    (
        7,
        "0007_receipts_retention",
        include_str!("../../migrations/0007_receipts_retention.sql"),
    ),
    (8, "0008_health", include_str!("../../migrations/0008_health.sql")),
    (9, "0009_admin_logs", include_str!("../../migrations/0009_admin_logs.sql")),
    (10, "0010_campaigns", include_str!("../../migrations/0010_campaigns.sql")),
    (
        11,
        "0011_sessions_written_once",
        include_str!("../../migrations/0011_sessions_written_once.sql"),
    ),
    (
        12,
        "0012_counters_hot_updates",
        include_str!("../../migrations/0012_counters_hot_updates.sql"),
    ),
    (
        13,
        "0013_keys_claimed_in_admission",
        include_str!("../../migrations/0013_keys_claimed_in_admission.sql"),
    ),
    (14, "0014_unread_indexes", include_str!("../../migrations/0014_unread_indexes.sql")),
    (
        15,
        "0015_health_reads_sessions",
        include_str!("../../migrations/0015_health_reads_sessions.sql"),
    ),
    (
        16,
        "0016_health_counted_at_write",
        include_str!("../../migrations/0016_health_counted_at_write.sql"),
    ),
];

/// Lock id for `pg_advisory_lock`: "smsgate" in ASCII.
const LOCK_ID: i64 = 0x0073_6d73_6761_7465;

/// Applies every migration not yet applied; returns how many were.
pub async fn run(pool: &Pool) -> Result<usize, StoreError> {
    let mut client = pool.get().await?;
    // Waiting for another instance's migrations, or rewriting a large table, may take longer
    // than a pooled connection's `statement_timeout`; the connection gets it back afterwards.
    client
        .batch_execute(&format!("SET statement_timeout = 0; SELECT pg_advisory_lock({LOCK_ID})"))
        .await?;
    let result = apply(&mut client).await;
    client
        .batch_execute(&format!("SELECT pg_advisory_unlock({LOCK_ID}); RESET statement_timeout"))
        .await?;
    result
}

async fn apply(client: &mut deadpool_postgres::Object) -> Result<usize, StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS smsgate_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    let applied: Vec<i32> = client
        .query("SELECT version FROM smsgate_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut count = 0;
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute("INSERT INTO smsgate_migrations (version, name) VALUES ($1, $2)", &[version, name])
            .await?;
        tx.commit().await?;
        tracing::info!(migration = name, "applied");
        count += 1;
    }
    client.batch_execute("SELECT smsgate_ensure_log_partitions(2)").await?;
    Ok(count)
}
