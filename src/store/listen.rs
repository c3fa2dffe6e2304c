//! `LISTEN smsgate_registry` on a connection of its own (never a pool connection: a pooled one
//! is recycled and would drop the subscription). When the connection drops it is opened again
//! with backoff; each (re)connection is reported too, since notifications sent while it was down
//! are lost and the listener's owner should reload.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use super::postgres_tls as tls;
use super::REGISTRY_CHANNEL;
use crate::config::DatabaseSettings;

/// What the listener tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenEvent {
    /// The connection is (again) listening; anything sent while it was down was missed.
    Connected,
    /// A registry change committed, at this version.
    Changed(i64),
}

/// The `application_name` of listener connections, followed by the schema they listen in
/// (`smsgate-listen:public`; PostgreSQL keeps 63 bytes of it), so an operator can find them in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "smsgate-listen";

const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Listens until `events` is closed, reconnecting with exponential backoff after any failure.
pub fn spawn(url: String, settings: DatabaseSettings, events: mpsc::UnboundedSender<ListenEvent>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = BACKOFF_FIRST;
        while !events.is_closed() {
            match listen(&url, &settings, &events).await {
                Ok(()) => backoff = BACKOFF_FIRST,
                Err(e) => tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "registry listener: connection failed"),
            }
            if events.is_closed() {
                break;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    })
}

/// One connection's life: connect, `LISTEN`, forward notifications of this schema until the
/// connection ends. `Ok` when it was established and then dropped.
async fn listen(url: &str, settings: &DatabaseSettings, events: &mpsc::UnboundedSender<ListenEvent>) -> anyhow::Result<()> {
    let (mut config, tls) = tls::configure(url, settings.ca_file.as_deref())?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_millis(settings.connect_timeout_ms));
    }
    let (client, mut connection) = config.connect(tls).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    // The connection is driven here; its messages (notifications) come out of this stream.
    let driver = tokio::spawn(async move {
        let mut stream = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = stream.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    let _ = tx.send(n.payload().to_string());
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "registry listener: connection lost");
                    break;
                }
            }
        }
    });
    let setup = async {
        let row = client
            .query_one(
                &format!("SELECT current_schema()::text, set_config('application_name', '{APPLICATION_NAME}:' || current_schema(), false)"),
                &[],
            )
            .await?;
        client.batch_execute(&format!("LISTEN {REGISTRY_CHANNEL}")).await?;
        Ok::<String, tokio_postgres::Error>(row.get(0))
    };
    let schema = match setup.await {
        Ok(schema) => schema,
        Err(e) => {
            driver.abort();
            return Err(e.into());
        }
    };
    tracing::info!("registry listener: listening");
    let _ = events.send(ListenEvent::Connected);
    while let Some(payload) = rx.recv().await {
        // Other schemas of the same database (tests, several deployments) share the channel.
        let Some((from, version)) = payload.rsplit_once(':') else {
            continue;
        };
        if from != schema {
            continue;
        }
        if let Ok(version) = version.parse() {
            if events.send(ListenEvent::Changed(version)).is_err() {
                break;
            }
        }
    }
    driver.abort();
    drop(client);
    Ok(())
}
