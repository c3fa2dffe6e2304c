//! `spawn_app`: the real application on port 0, the provider simulator on port 0, and a store
//! (memory, or a fresh PostgreSQL schema). One request helper serves every route.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use smsgate::app::Application;
use smsgate::clock::Clock;
use smsgate::config::Settings;
use smsgate::sim::{self, Fault, SimHandle, SimOptions};

use crate::db::TestDb;

mod settings;

pub use settings::{base_settings, client, config, config_with, sim_provider, sim_secrets, to_toml, with_providers, SettingsExt};

pub const SEND_TOKEN: &str = "test-send-token";
pub const ADMIN_TOKEN: &str = "test-admin-token";
/// A second calling app, isolated from the first.
pub const OTHER_TOKEN: &str = "test-other-app-token";
pub const PHONE: &str = "+919876543210";

/// An Indian mobile number in the `91-9876` prefix.
pub fn phone(i: u32) -> String {
    format!("+9198765{i:05}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Postgres,
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    /// Shared with a second instance started by `spawn_second`.
    pub sim: Arc<SimHandle>,
    /// The schema this app owns (dropped with it); `None` for a second instance.
    pub db: Option<TestDb>,
    /// The database URL the app uses, when it uses PostgreSQL.
    pub db_url: Option<String>,
    /// The app's "now": it stands still until a test moves it (shared with a second instance).
    pub clock: Clock,
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

pub async fn start_sim() -> SimHandle {
    sim::start(SimOptions::default()).await.expect("simulator starts")
}

/// Starts the app on `backend` with the default settings (2factor then twilio).
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_with(backend, config).await
}

/// Starts the app with the default settings as `adjust` changes them.
pub async fn spawn_tuned(backend: Backend, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_with(backend, |sim| config_with(sim, adjust)).await
}

/// Starts the app with the settings `make` builds for the running simulator.
pub async fn spawn_with(backend: Backend, make: impl FnOnce(&SimHandle) -> Settings) -> TestApp {
    let sim = start_sim().await;
    let settings = make(&sim);
    spawn_on(backend, sim, settings).await
}

pub async fn spawn_on(backend: Backend, sim: SimHandle, settings: Settings) -> TestApp {
    let db = match backend {
        Backend::Memory => None,
        Backend::Postgres => Some(TestDb::new().await),
    };
    let db_url = db.as_ref().map(|d| d.url());
    launch(settings, Arc::new(sim), db, db_url, test_clock()).await
}

/// Starts the app on `db`'s schema reached through `url` (a proxy in front of the server);
/// the app owns `db`, dropped with it.
pub async fn spawn_via(db: TestDb, url: String, sim: SimHandle, settings: Settings) -> TestApp {
    launch(settings, Arc::new(sim), Some(db), Some(url), test_clock()).await
}

/// Two instances on one PostgreSQL schema and one simulator, with the settings `make` builds.
pub async fn spawn_pair(make: impl FnOnce(&SimHandle) -> Settings) -> (TestApp, TestApp) {
    let sim = start_sim().await;
    let settings = make(&sim);
    let first = spawn_on(Backend::Postgres, sim, settings.clone()).await;
    let second = spawn_second(&first, settings).await;
    (first, second)
}

/// A second instance next to `first`: the same simulator and, on PostgreSQL, the same schema,
/// so that state held in the store (limits, idempotency keys, sessions) is shared.
pub async fn spawn_second(first: &TestApp, settings: Settings) -> TestApp {
    launch(settings, first.sim.clone(), None, first.db_url.clone(), first.clock.clone()).await
}

/// A held clock one second into the current minute: every per-minute window a test fills is
/// whole, and nothing expires unless the test moves the clock.
fn test_clock() -> Clock {
    let now = chrono::Utc::now().timestamp();
    Clock::manual(chrono::DateTime::from_timestamp(now - now.rem_euclid(60) + 1, 0).expect("in range"))
}

/// Builds and runs the application on port 0 with `settings` (checked as a config file would
/// be), and returns its handle.
async fn launch(mut settings: Settings, sim: Arc<SimHandle>, db: Option<TestDb>, db_url: Option<String>, clock: Clock) -> TestApp {
    // `SMSGATE_LOG=debug cargo test …` shows the gateway's log next to a failing test.
    let filter = tracing_subscriber::EnvFilter::try_from_env("SMSGATE_LOG").unwrap_or_else(|_| "error".into());
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter(filter).try_init();

    settings.server.listen = "127.0.0.1:0".into();
    settings.database_url = db_url.clone().map(Into::into);
    settings.otp_secret = Some("test-secret".to_string().into());
    settings.validate("<test settings>").expect("test settings are valid");
    let secrets = sim_secrets();
    let app = Application::build_at(settings, Arc::new(move |k| secrets.get(k).cloned()), clock.clone())
        .await
        .expect("app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        base,
        http: reqwest::Client::new(),
        sim,
        db,
        db_url,
        clock,
    }
}

impl TestApp {
    /// Moves the app's clock forward.
    pub fn advance(&self, secs: i64) {
        self.clock.advance(chrono::Duration::seconds(secs));
    }

    /// POSTs `body` as JSON with `token`.
    pub async fn post_as(&self, token: &str, path: &str, body: Value) -> Reply {
        self.request(reqwest::Method::POST, path, Some(token), Some(body.to_string()), &[])
            .await
    }

    /// POSTs `body` as JSON with the send token.
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.post_with(path, body, &[]).await
    }

    /// POSTs `body` as JSON with the send token and extra `headers`.
    pub async fn post_with(&self, path: &str, body: Value, headers: &[(&str, &str)]) -> Reply {
        self.request(reqwest::Method::POST, path, Some(SEND_TOKEN), Some(body.to_string()), headers)
            .await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.request(reqwest::Method::GET, path, token, None, &[]).await
    }

    /// Any request: `raw` is sent as the body with `Content-Type: application/json`.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        raw: Option<String>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = raw {
            req = req.header("content-type", "application/json").body(b);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.expect("request reaches the app");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply { status, headers, body }
    }

    pub async fn send_otp(&self) -> Reply {
        self.send_otp_to(PHONE).await
    }

    /// Sends an OTP to `phone` with the send token.
    pub async fn send_otp_to(&self, phone: &str) -> Reply {
        self.post("/v1/otp/send", json!({ "phone": phone })).await
    }

    pub async fn verify(&self, session_id: &str, otp: &str) -> Reply {
        self.post("/v1/otp/verify", json!({ "session_id": session_id, "otp": otp })).await
    }

    /// Stores `user`'s step-up contact (`{phone, otp_enabled, preferred_provider}`) as `token`'s app.
    pub async fn put_contact(&self, token: &str, user: &str, body: Value) -> Reply {
        let path = format!("/v1/users/{user}/contact");
        self.request(reqwest::Method::PUT, &path, Some(token), Some(body.to_string()), &[])
            .await
    }

    /// Reads `user`'s step-up contact with `token`.
    pub async fn contact(&self, user: &str, token: Option<&str>) -> Reply {
        self.get(&format!("/v1/users/{user}/contact"), token).await
    }

    /// `GET /v1/routing/explain?{query}` with `token`.
    pub async fn explain(&self, query: &str, token: &str) -> Reply {
        self.get(&format!("/v1/routing/explain?{query}"), Some(token)).await
    }

    /// The provider of the newest message the simulator delivered to `phone`.
    pub fn delivered_by(&self, phone: &str) -> Option<String> {
        self.sim.state().messages(Some(phone)).last().map(|m| m.provider.clone())
    }

    /// Sends an OTP to `phone`, checks `provider` delivered it, and verifies the delivered code.
    pub async fn otp_round_trip(&self, phone: &str, provider: &str) {
        let sent = self.send_otp_to(phone).await;
        assert_eq!(sent.status, 200, "{}", sent.body);
        assert_eq!(self.delivered_by(phone).as_deref(), Some(provider), "{}", sent.body);
        let code = self.sim.state().last_code(phone).expect("a code was delivered");
        let sid = sent.body["session_id"].as_str().expect("a session id");
        let verified = self.verify(sid, &code).await;
        assert_eq!(
            (verified.status, &verified.body["verified"]),
            (200, &json!(true)),
            "{}",
            verified.body
        );
    }

    /// The newest code the simulator delivered to `PHONE`.
    pub fn last_code(&self) -> String {
        self.sim.state().last_code(PHONE).expect("a code was delivered")
    }

    pub fn calls(&self, provider: &str) -> u64 {
        self.sim.state().calls(provider)
    }

    /// Provider calls so far, over every simulator fake.
    pub fn sent(&self) -> u64 {
        sim::PROVIDERS.iter().map(|p| self.calls(p)).sum()
    }

    pub fn fault(&self, provider: &str, spec: &str) {
        self.sim.state().set_fault(provider, Some(Fault::parse(spec).expect("valid fault")));
    }

    pub fn clear_fault(&self, provider: &str) {
        self.sim.state().set_fault(provider, None);
    }

    /// The metric line's value, e.g. `smsgate_failovers_total{from="2factor",reason="unavailable",to="twilio"}`.
    pub async fn metric(&self, line_prefix: &str) -> Option<f64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find(|l| l.starts_with(line_prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}

/// Polls `check` until it is true or `within` runs out.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Runs each listed test on the memory store and on PostgreSQL, as tests `memory::$name` and
/// `postgres::$name`. Each store has a runner: an async function that sets the store up, hands
/// it to the test function it is given, and tears it down afterwards. Without runners the tests
/// take a [`Backend`] and start the app on it ([`on_memory`], [`on_postgres`]).
#[macro_export]
macro_rules! on_both_stores {
    (memory: $memory:path, postgres: $postgres:path; $($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $memory(super::$name).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $postgres(super::$name).await;
            })*
        }
    };
    ($($name:ident),* $(,)?) => {
        $crate::on_both_stores!(
            memory: $crate::helpers::on_memory,
            postgres: $crate::helpers::on_postgres;
            $($name),*
        );
    };
}

/// Runs an app test on the memory store.
pub async fn on_memory<F: std::future::Future<Output = ()>>(test: impl FnOnce(Backend) -> F) {
    test(Backend::Memory).await
}

/// Runs an app test on a fresh PostgreSQL schema.
pub async fn on_postgres<F: std::future::Future<Output = ()>>(test: impl FnOnce(Backend) -> F) {
    test(Backend::Postgres).await
}
