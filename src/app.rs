//! `Application`: builds everything `serve` runs (store, registry, router, gateway, HTTP server)
//! from `Settings`, binds its listener (port 0 in tests), and runs until stopped.

use std::net::TcpListener;
use std::sync::Arc;

use std::time::Duration;

use actix_web::http::KeepAlive;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use secrecy::ExposeSecret;

use crate::admin::RegistryAdmin;
use crate::api::{self, AppState, Clients};
use crate::clock::Clock;
use crate::config::Settings;
use crate::keys::HmacKey;
use crate::limits::{Idempotency, Limits};
use crate::metrics::Metrics;
use crate::service::Gateway;
use crate::store::{MemoryStore, PostgresStore, Store};

/// Where provider secrets come from: the environment in production, a map in tests.
pub type Secrets = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    /// Campaign queue workers, stopped after the server.
    campaign_workers: crate::campaigns::Workers,
    /// Written to after the server stops: the answers of the last keyed requests.
    store: Arc<dyn Store>,
    /// The token made because no `[[clients]]` were configured, to be shown once.
    pub generated_token: Option<String>,
}

impl Application {
    /// Builds with secrets from the process environment.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, Arc::new(|var| std::env::var(var).ok())).await
    }

    pub async fn build_with(settings: Settings, secrets: Secrets) -> anyhow::Result<Self> {
        Self::build_at(settings, secrets, Clock::system()).await
    }

    /// Builds with `clock` as every rule's "now" (tests hold it and move it).
    pub async fn build_at(settings: Settings, secrets: Secrets, clock: Clock) -> anyhow::Result<Self> {
        let metrics = Metrics::new();
        let store = open_store(&settings, &metrics, &clock).await?;
        adopt_unowned_rows(&*store, &settings).await?;
        let settings = Arc::new(settings);
        // The providers: the database's registry (seeded from the file while empty), else the file.
        let health = Arc::new(crate::health::Health::new(settings.health.clone(), metrics.clone()));
        let (registry, router) = RegistryAdmin::open(
            Arc::clone(&store),
            Arc::clone(&settings),
            Arc::clone(&secrets),
            metrics.clone(),
            Arc::clone(&health),
            clock.clone(),
        )
        .await?;
        let key = match &settings.otp_secret {
            Some(secret) if !secret.expose_secret().is_empty() => HmacKey::new(secret.clone()),
            _ => {
                tracing::warn!("SMSGATE_OTP_SECRET is not set: using a random secret, so sessions do not survive a restart and instances cannot share them");
                HmacKey::random()
            }
        };
        let token_key = match &settings.token_secret {
            Some(secret) if !secret.expose_secret().is_empty() => HmacKey::new(secret.clone()),
            _ => HmacKey::new(hex::encode(key.sign(b"smsgate verification token v1")).into()),
        };
        let hooks = crate::hooks::Hooks::build(&settings.hooks, &*secrets).context("hook configuration")?;
        let (clients, generated_token) = if settings.clients.is_empty() {
            let (token, clients) = Clients::generated();
            (clients, Some(token))
        } else {
            (Clients::from_config(&settings.clients), None)
        };
        let listener = TcpListener::bind(&settings.server.listen).with_context(|| format!("binding {}", settings.server.listen))?;
        let port = listener.local_addr()?.port();
        let max_body = settings.server.max_body_bytes;
        let limits = Limits::new(&settings, metrics.clone());
        spawn_sweeper(Arc::clone(&store), clock.clone());
        crate::hooks::receipts::spawn_matcher(Arc::clone(&store), clock.clone());
        crate::health::spawn_refresher(health, Arc::clone(&store), clock.clone());
        crate::routing::probes::spawn_probes(Arc::clone(&router), settings.probes.clone());
        let gateway = Arc::new(Gateway {
            idempotency: Idempotency::new(Arc::clone(&store)),
            clock,
            store,
            limits,
            router,
            settings,
            key,
            token_key,
            metrics,
        });
        let cidrs = |list: &[String]| list.iter().filter_map(|c| crate::net::Cidr::parse(c)).collect::<Vec<_>>();
        let state = web::Data::new(AppState {
            trusted_proxies: cidrs(&gateway.settings.server.trusted_proxies),
            allowed_callers: cidrs(&gateway.settings.server.allowed_callers),
            gateway: Arc::clone(&gateway),
            clients: Arc::new(clients),
            hooks: Arc::new(hooks),
            registry,
            twilio_inbound_token: secrets(&gateway.settings.campaigns.twilio_auth_token_env)
                .filter(|t| !t.is_empty())
                .map(Into::into),
        });
        let campaign_workers = crate::campaigns::Workers::spawn(Arc::clone(&gateway));

        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap_fn(api::bound_body)
                .wrap_fn(api::observe)
                .configure(|cfg| api::configure(cfg, max_body))
                .default_service(web::to(api::not_found))
        });
        // Every phase of a connection is bounded: the head, idle keep-alive, the close, and how
        // many are open at once (the body's deadline is `api::bound_body`).
        let cfg = &gateway.settings.server;
        let ms = Duration::from_millis;
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let keep_alive = match cfg.keep_alive_seconds {
            0 => KeepAlive::Disabled,
            s => KeepAlive::Timeout(Duration::from_secs(s)),
        };
        let server = server
            .workers(workers)
            .max_connections(cfg.max_connections.div_ceil(workers))
            .client_request_timeout(ms(cfg.header_timeout_ms))
            .client_disconnect_timeout(ms(cfg.client_disconnect_timeout_ms))
            .keep_alive(keep_alive)
            .listen(listener)?
            .run();
        Ok(Self {
            port,
            server,
            campaign_workers,
            store: Arc::clone(&gateway.store),
            generated_token,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM; requests in flight finish (and their attempts commit) first,
    /// and the answers of keyed requests are stored before it returns.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        self.campaign_workers.stop().await;
        self.store.flush_answers().await;
        served
    }
}

async fn open_store(settings: &Settings, metrics: &Metrics, clock: &Clock) -> anyhow::Result<Arc<dyn Store>> {
    match &settings.database_url {
        Some(url) if !url.expose_secret().is_empty() => {
            let applied = PostgresStore::migrate(url.expose_secret(), &settings.database)
                .await
                .context("applying migrations")?;
            let pg = PostgresStore::connect_with(url.expose_secret(), &settings.database, metrics.clone())?;
            tracing::info!(applied, "database ready");
            crate::store::retention::spawn(pg.pool().clone(), settings.retention.clone(), clock.clone());
            Ok(Arc::new(pg))
        }
        _ => {
            tracing::warn!("DATABASE_URL is not set: using the in-memory store; nothing is durable or shared between instances");
            Ok(Arc::new(MemoryStore::new()))
        }
    }
}

/// Sessions and contacts from before apps were isolated have no owner: the only app that may
/// send gets them. With several such apps nobody does (only admins see them), and we say so.
async fn adopt_unowned_rows(store: &dyn Store, settings: &Settings) -> anyhow::Result<()> {
    let senders: Vec<&str> = settings
        .clients
        .iter()
        .filter(|c| c.roles.contains(&crate::config::Role::Send))
        .map(|c| c.name.as_str())
        .collect();
    match senders.as_slice() {
        [only] => {
            let adopted = store
                .adopt_unowned(only)
                .await
                .context("giving unowned sessions and contacts to their app")?;
            if adopted > 0 {
                tracing::info!(client = %only, rows = adopted, "sessions and contacts from before apps were isolated now belong to the only sending app");
            }
        }
        _ => tracing::debug!("several sending apps: rows without an owner stay visible to admins only"),
    }
    Ok(())
}

/// Deletes expired counters and idempotency keys every five minutes.
fn spawn_sweeper(store: Arc<dyn Store>, clock: Clock) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(300));
        loop {
            tick.tick().await;
            match store.sweep(clock.now()).await {
                Ok(n) if n > 0 => tracing::debug!(deleted = n, "swept expired limit state"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = ?e, "sweeping expired limit state failed"),
            }
        }
    });
}
