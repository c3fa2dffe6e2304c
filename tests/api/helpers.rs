//! `spawn_app`: the real application on port 0, the provider simulator on port 0, and a store
//! (memory, or a fresh PostgreSQL schema). One request helper serves every route.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use smsgate::app::Application;
use smsgate::clock::Clock;
use smsgate::config::Settings;
use smsgate::sim::{self, Fault, SimHandle, SimOptions};

use crate::db::TestDb;

pub const SEND_TOKEN: &str = "test-send-token";
pub const ADMIN_TOKEN: &str = "test-admin-token";
/// A second calling app, isolated from the first.
pub const OTHER_TOKEN: &str = "test-other-app-token";
pub const PHONE: &str = "+919876543210";

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

/// `[otp]`, relaxed `[limits]`, the send and admin clients, and `rest` (providers, `[routing]`, …).
pub fn base_config(rest: &str) -> String {
    format!(
        r#"
[otp]
length = 6
ttl_seconds = 300
max_attempts = 5
default_country = "91"

# Failover tests send many codes to one number; the limits have tests of their own.
[limits]
per_phone_per_minute = 1000
per_phone_per_day = 1000
per_prefix_per_minute = 10000
resend_cooldown_seconds = 0
verify_failures_per_phone_per_day = 1000
verify_failures_per_user_per_day = 1000

[[clients]]
name = "app"
token_sha256 = "{send}"
roles = ["send"]

[[clients]]
name = "ops"
token_sha256 = "{admin}"
roles = ["admin"]

[[clients]]
name = "other-app"
token_sha256 = "{other}"
roles = ["send"]

{rest}
"#,
        send = smsgate::api::sha256_hex(SEND_TOKEN),
        admin = smsgate::api::sha256_hex(ADMIN_TOKEN),
        other = smsgate::api::sha256_hex(OTHER_TOKEN),
    )
}

/// The 2factor (AUTOGEN) and twilio providers against the simulator, and `extra` TOML
/// appended (more `[routing]` keys, other providers, overrides).
pub fn config(sim: &SimHandle, two_factor_extra: &str, extra: &str) -> String {
    base_config(&format!(
        r#"
[[providers]]
name = "2factor"
kind = "two_factor"
priority = 1
base_url = "{tf}"
api_key_env = "TWO_FACTOR_API_KEY"
sender_id = "TFCTOR"
template = "SMSTemplate1"
countries = ["91"]
{two_factor_extra}

[[providers]]
name = "twilio"
kind = "twilio"
priority = 2
base_url = "{tw}"
account_sid_env = "TWILIO_ACCOUNT_SID"
auth_token_env = "TWILIO_AUTH_TOKEN"
from = "+15005550006"

{extra}
"#,
        tf = sim.url("2factor"),
        tw = sim.url("twilio"),
    ))
}

/// The simulator's credentials under the environment names the configs use.
pub fn sim_secrets() -> HashMap<String, String> {
    let c = sim::SimCredentials::default();
    let plivo_basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{}:{}", c.plivo_auth_id, c.auth_token),
    );
    HashMap::from([
        ("TWO_FACTOR_API_KEY".to_string(), c.api_key.clone()),
        ("TWILIO_ACCOUNT_SID".to_string(), c.account_sid.clone()),
        ("TWILIO_AUTH_TOKEN".to_string(), c.auth_token.clone()),
        ("VONAGE_API_KEY".to_string(), c.api_key.clone()),
        ("VONAGE_API_SECRET".to_string(), c.api_secret.clone()),
        ("MSG91_AUTH_KEY".to_string(), c.api_key.clone()),
        ("TEXTLOCAL_API_KEY".to_string(), c.api_key.clone()),
        ("FAST2SMS_API_KEY".to_string(), c.api_key.clone()),
        ("PLIVO_AUTH_ID".to_string(), c.plivo_auth_id.clone()),
        ("PLIVO_AUTH_TOKEN".to_string(), c.auth_token.clone()),
        // The generic `http` adapter speaking Plivo's API sends this as `Authorization: Basic …`.
        ("PLIVO_BASIC_AUTH".to_string(), plivo_basic),
        // The names examples/sim.toml and `smsgate sim` use.
        ("SIM_API_KEY".to_string(), c.api_key.clone()),
        ("SIM_API_SECRET".to_string(), c.api_secret.clone()),
        ("SIM_TWILIO_SID".to_string(), c.account_sid.clone()),
        ("SIM_AUTH_TOKEN".to_string(), c.auth_token.clone()),
        ("SIM_PLIVO_AUTH_ID".to_string(), c.plivo_auth_id.clone()),
    ])
}

pub async fn start_sim() -> SimHandle {
    sim::start(SimOptions::default()).await.expect("simulator starts")
}

/// Starts the app on `backend` with the default config (2factor then twilio).
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_with(backend, |sim| config(sim, "", "")).await
}

/// Starts the app with the TOML that `make_config` writes for the running simulator.
pub async fn spawn_with(backend: Backend, make_config: impl FnOnce(&SimHandle) -> String) -> TestApp {
    let sim = start_sim().await;
    let toml = make_config(&sim);
    spawn_on(backend, sim, &toml).await
}

pub async fn spawn_on(backend: Backend, sim: SimHandle, toml: &str) -> TestApp {
    let db = match backend {
        Backend::Memory => None,
        Backend::Postgres => Some(TestDb::new().await),
    };
    let db_url = db.as_ref().map(|d| d.url());
    let clock = test_clock();
    let base = launch(toml, db_url.clone(), clock.clone()).await;
    TestApp {
        base,
        http: reqwest::Client::new(),
        sim: Arc::new(sim),
        db,
        db_url,
        clock,
    }
}

/// Starts the app on `db`'s schema reached through `url` (a proxy in front of the server);
/// the app owns `db`, dropped with it.
pub async fn spawn_via(db: TestDb, url: String, sim: SimHandle, toml: &str) -> TestApp {
    let clock = test_clock();
    let base = launch(toml, Some(url.clone()), clock.clone()).await;
    TestApp {
        base,
        http: reqwest::Client::new(),
        sim: Arc::new(sim),
        db: Some(db),
        db_url: Some(url),
        clock,
    }
}

/// A second instance next to `first`: the same simulator and, on PostgreSQL, the same schema,
/// so that state held in the store (limits, idempotency keys, sessions) is shared.
pub async fn spawn_second(first: &TestApp, toml: &str) -> TestApp {
    let base = launch(toml, first.db_url.clone(), first.clock.clone()).await;
    TestApp {
        base,
        http: reqwest::Client::new(),
        sim: first.sim.clone(),
        db: None,
        db_url: first.db_url.clone(),
        clock: first.clock.clone(),
    }
}

/// A held clock one second into the current minute: every per-minute window a test fills is
/// whole, and nothing expires unless the test moves the clock.
fn test_clock() -> Clock {
    let now = chrono::Utc::now().timestamp();
    Clock::manual(chrono::DateTime::from_timestamp(now - now.rem_euclid(60) + 1, 0).expect("in range"))
}

/// Builds and runs the application on port 0; returns its base URL.
async fn launch(toml: &str, database_url: Option<String>, clock: Clock) -> String {
    // `SMSGATE_LOG=debug cargo test …` shows the gateway's log next to a failing test.
    let filter = tracing_subscriber::EnvFilter::try_from_env("SMSGATE_LOG").unwrap_or_else(|_| "error".into());
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter(filter).try_init();

    let mut settings = Settings::from_toml(toml).expect("test config is valid");
    settings.server.listen = "127.0.0.1:0".into();
    settings.database_url = database_url.map(Into::into);
    settings.otp_secret = Some("test-secret".to_string().into());
    let secrets = sim_secrets();
    let app = Application::build_at(settings, Arc::new(move |k| secrets.get(k).cloned()), clock)
        .await
        .expect("app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    base
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
        self.request(reqwest::Method::POST, path, Some(SEND_TOKEN), Some(body.to_string()), &[])
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
        self.post("/v1/otp/send", serde_json::json!({ "phone": PHONE })).await
    }

    pub async fn verify(&self, session_id: &str, otp: &str) -> Reply {
        self.post("/v1/otp/verify", serde_json::json!({ "session_id": session_id, "otp": otp }))
            .await
    }

    /// The newest code the simulator delivered to `PHONE`.
    pub fn last_code(&self) -> String {
        self.sim.state().last_code(PHONE).expect("a code was delivered")
    }

    pub fn calls(&self, provider: &str) -> u64 {
        self.sim.state().calls(provider)
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

/// Runs each listed test on the memory store and on PostgreSQL.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name($crate::helpers::Backend::Memory).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name($crate::helpers::Backend::Postgres).await;
            })*
        }
    };
}

/// `toml` (a `config` output) with its `[limits]` table replaced by `[limits]` + `limits`.
pub fn with_limits(toml: &str, limits: &str) -> String {
    let start = toml.find("[limits]").expect("the config has a [limits] table");
    let end = start + toml[start..].find("\n[[").expect("a table follows [limits]");
    format!("{}[limits]\n{limits}\n{}", &toml[..start], &toml[end..])
}
