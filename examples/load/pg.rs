//! A fresh PostgreSQL schema for one run (as the API tests make one per test), dropped at the end.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use tokio_postgres::NoTls;

pub struct Schema {
    base: String,
    pub name: String,
}

impl Schema {
    /// Creates `load_<unix time>_<random>` in the database of `base`, which must be on loopback.
    pub async fn create(base: &str) -> anyhow::Result<Self> {
        let url = url::Url::parse(base).context("--database-url is not a URL")?;
        if !matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]" | "::1")) {
            bail!("--database-url must point at a loopback address, not {:?}", url.host_str());
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let name = format!("load_{now}_{}", uuid::Uuid::new_v4().simple());
        let schema = Self {
            base: base.to_string(),
            name,
        };
        schema.execute(&format!("CREATE SCHEMA \"{}\"", schema.name)).await?;
        Ok(schema)
    }

    /// A URL whose connections see only this schema.
    pub fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-csearch_path%3D{}", self.base, self.name)
    }

    pub async fn drop_now(self) -> anyhow::Result<()> {
        self.execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name)).await
    }

    async fn execute(&self, sql: &str) -> anyhow::Result<()> {
        let (client, conn) = tokio_postgres::connect(&self.base, NoTls)
            .await
            .with_context(|| "PostgreSQL is not reachable at --database-url")?;
        let task = tokio::spawn(conn);
        client.batch_execute(sql).await.with_context(|| sql.to_string())?;
        drop(client);
        let _ = task.await;
        Ok(())
    }
}
