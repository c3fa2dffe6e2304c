//! A fresh PostgreSQL schema per test: created and migrated on demand, dropped afterwards;
//! schemas left by killed runs are swept once they are an hour old.

use std::sync::Once;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio_postgres::NoTls;

/// The server the tests use: `TEST_DATABASE_URL`, else the local cluster's `test` database.
pub fn base_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub struct TestDb {
    pub schema: String,
}

impl TestDb {
    pub async fn new() -> Self {
        static SWEEP: Once = Once::new();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let schema = format!("t_{now}_{}", uuid::Uuid::new_v4().simple());
        let client = connect(&base_url()).await;
        let mut sweep = false;
        SWEEP.call_once(|| sweep = true);
        if sweep {
            let rows = client
                .query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 't\\_%'", &[])
                .await
                .unwrap();
            for row in rows {
                let name: String = row.get(0);
                let born: Option<u64> = name.split('_').nth(1).and_then(|s| s.parse().ok());
                if born.is_some_and(|b| b + 3600 < now) {
                    let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE")).await;
                }
            }
        }
        client.batch_execute(&format!("CREATE SCHEMA \"{schema}\"")).await.unwrap();
        Self { schema }
    }

    /// A URL whose connections see only this schema.
    pub fn url(&self) -> String {
        format!("{}?options=-csearch_path%3D{}", base_url(), self.schema)
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url()).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let schema = self.schema.clone();
        // Drop runs outside any runtime we may block; use a short-lived one on its own thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok((client, conn)) = tokio_postgres::connect(&base_url(), NoTls).await {
                    tokio::spawn(conn);
                    let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).await;
                }
            })
        })
        .join();
    }
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL at {} is not reachable ({e}); start it or set TEST_DATABASE_URL",
            base_url()
        )
    });
    tokio::spawn(conn);
    client
}
