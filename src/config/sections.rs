//! The sections of `Settings` other than providers: server, database, OTP policy, clients,
//! routing and breakers, limits. Each field's doc comment is what `providers.toml` documents.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Role;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address to listen on.
    pub listen: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Proxies (CIDRs) whose `X-Forwarded-For` names the end user's IP.
    pub trusted_proxies: Vec<String>,
    /// Caller networks (CIDRs) allowed to use the send API; empty allows every network.
    pub allowed_callers: Vec<String>,
    /// Time a client has to send its first request's head (request line and headers) once the
    /// connection is accepted; else 408 and close. Later requests on the connection are bounded
    /// by `keep_alive_seconds`. actix measures it on a clock that ticks every 500 ms, so it may
    /// fire up to 500 ms early: at least 1000.
    pub header_timeout_ms: u64,
    /// Time a client has to send a request's whole body once the handler starts reading it;
    /// else 408 and close. actix has no such timeout of its own; `api` applies it.
    pub body_timeout_ms: u64,
    /// How long an idle keep-alive connection stays open; 0 turns keep-alive off.
    pub keep_alive_seconds: u64,
    /// Time a client has to read the end of a response before the connection is dropped.
    pub client_disconnect_timeout_ms: u64,
    /// Open client connections, all workers together; past it new connections wait in the
    /// listen backlog instead of taking a file descriptor. Keep it below the process's
    /// descriptor limit (`ulimit -n`) less the database pool and provider connections.
    pub max_connections: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 16 * 1024,
            trusted_proxies: Vec::new(),
            allowed_callers: Vec::new(),
            // A legitimate client sends its head and its small (≤16 KiB) body in one go; five
            // seconds covers a slow mobile link, and a stalled client holds a socket no longer.
            header_timeout_ms: 5_000,
            body_timeout_ms: 5_000,
            keep_alive_seconds: 30,
            client_disconnect_timeout_ms: 1_000,
            // Fits the common default descriptor limit of 1,024 with room for the pool, the
            // provider clients and the listener; raise both together on a bigger host.
            max_connections: 800,
        }
    }
}

/// The PostgreSQL pool. Every database wait is bounded so that a stalled database answers sends
/// with 503 inside the request deadline (`routing.deadline_ms`) instead of holding them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// Connections per instance.
    pub pool_size: usize,
    /// Longest wait for a free pooled connection.
    pub pool_wait_ms: u64,
    /// Longest wait to open a connection (TCP, TLS and start-up).
    pub connect_timeout_ms: u64,
    /// PostgreSQL's `statement_timeout` on every connection: a statement waiting on a lock or
    /// running longer is cancelled. Also the client-side bound of a call's statements, for a
    /// database that stops answering at all.
    pub statement_timeout_ms: u64,
    /// PEM file of the CA that signed the server's certificate, for `sslmode=verify-full` or
    /// `verify-ca` (and naming one without `sslmode` means `verify-full`); `sslrootcert=` in
    /// `DATABASE_URL` overrides it. Unset: the system's trust store.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        // A send makes two store round trips; both bounds together stay well inside the
        // 10 s request deadline, and far above a healthy statement (milliseconds).
        Self {
            pool_size: 16,
            pool_wait_ms: 1_000,
            connect_timeout_ms: 2_000,
            statement_timeout_ms: 2_000,
            ca_file: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtpSettings {
    /// Digits in a code smsgate makes (4 to 10).
    pub length: usize,
    /// How long a session accepts its code.
    pub ttl_seconds: u64,
    /// Wrong codes allowed before the session fails.
    pub max_attempts: u32,
    /// Calling code given to a bare 10-digit number.
    pub default_country: String,
    /// The text of an OTP sent by smsgate; `{code}` and `{minutes}` are filled in.
    pub message: String,
    /// Per-purpose overrides (`login`, `step_up`, `phone_change`).
    pub purposes: BTreeMap<String, OtpPolicy>,
    /// Lifetime of the verification token a successful verify returns.
    pub token_ttl_seconds: u64,
}

impl Default for OtpSettings {
    fn default() -> Self {
        Self {
            length: 6,
            ttl_seconds: 300,
            max_attempts: 5,
            default_country: "91".into(),
            message: "Your verification code is {code}. It expires in {minutes} minutes.".into(),
            purposes: BTreeMap::new(),
            token_ttl_seconds: 300,
        }
    }
}

/// Overrides of the OTP defaults for one purpose; unset fields keep the defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtpPolicy {
    pub length: Option<usize>,
    pub ttl_seconds: Option<u64>,
    pub max_attempts: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub name: String,
    /// SHA-256 (hex) of the bearer token; the token itself is never stored.
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// Several hashes for rotation: any of them is accepted.
    #[serde(default)]
    pub token_sha256s: Vec<String>,
    /// `send`, `admin`, `super_admin`.
    pub roles: Vec<Role>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingSettings {
    /// Whole-request deadline across every attempt.
    pub deadline_ms: u64,
    /// Default per-attempt timeout.
    pub attempt_timeout_ms: u64,
    /// TCP/TLS connect timeout to a provider.
    pub connect_timeout_ms: u64,
    /// Transactional and template messages: fail over after a timeout that may have delivered.
    pub failover_on_ambiguous_timeout: bool,
    /// Failover retries allowed as a fraction of first attempts (over the last 10 s).
    pub retry_budget_ratio: f64,
    /// Failover retries always allowed per second, whatever the ratio.
    pub retry_budget_min_per_second: u32,
    /// First 429 cool-down when the provider gives no `Retry-After` (doubles, with full jitter).
    pub throttle_backoff_ms: u64,
    pub throttle_backoff_max_ms: u64,
    pub breaker: BreakerSettings,
    /// Per-country provider order: `"91" = ["2factor", "msg91", "twilio"]`; `default` for the rest.
    pub countries: BTreeMap<String, Vec<String>>,
}

impl Default for RoutingSettings {
    fn default() -> Self {
        Self {
            deadline_ms: 10_000,
            attempt_timeout_ms: 4_000,
            connect_timeout_ms: 1_000,
            failover_on_ambiguous_timeout: false,
            retry_budget_ratio: 0.5,
            retry_budget_min_per_second: 10,
            throttle_backoff_ms: 1_000,
            throttle_backoff_max_ms: 60_000,
            breaker: BreakerSettings::default(),
            countries: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    /// Sliding window over which the failure rate is measured.
    pub window_seconds: u64,
    /// Calls in the window before the failure rate can open the breaker.
    pub min_calls: u32,
    /// Failure rate (0 to 1) that opens the breaker.
    pub failure_rate: f64,
    /// Consecutive failures that open the breaker whatever the rate.
    pub consecutive_failures: u32,
    /// First open wait; doubles on each re-open up to `open_max_ms`.
    pub open_ms: u64,
    pub open_max_ms: u64,
    /// Probes let through while half-open; that many successes close it.
    pub half_open_probes: u32,
    /// A call slower than this counts as a failure.
    pub slow_call_ms: u64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            window_seconds: 30,
            min_calls: 10,
            failure_rate: 0.5,
            consecutive_failures: 5,
            open_ms: 5_000,
            open_max_ms: 300_000,
            half_open_probes: 1,
            slow_call_ms: 3_000,
        }
    }
}

/// Abuse limits; every window holds across instances through the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    pub per_phone_per_minute: u32,
    pub per_phone_per_day: u32,
    pub per_ip_per_minute: u32,
    pub per_user_per_day: u32,
    /// Sends per minute to one destination prefix (country code and `prefix_digits` digits).
    pub per_prefix_per_minute: u32,
    pub prefix_digits: usize,
    /// Requests per minute from one calling app.
    pub per_client_per_minute: u32,
    /// First resend cooldown; doubles on each resend to the same phone.
    pub resend_cooldown_seconds: u64,
    pub resend_cooldown_max_seconds: u64,
    /// Countries (calling codes) that may receive SMS; empty: those of the configured providers.
    pub allowed_countries: Vec<String>,
    pub blocked_countries: Vec<String>,
    /// Log and count what the pumping guard would block, but send it.
    pub record_only: bool,
    /// Wrong codes accepted per phone per day, over all its sessions; then verify is refused.
    pub verify_failures_per_phone_per_day: u32,
    /// Wrong codes accepted per user (of one app) per day.
    pub verify_failures_per_user_per_day: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            per_phone_per_minute: 5,
            per_phone_per_day: 10,
            per_ip_per_minute: 20,
            per_user_per_day: 10,
            per_prefix_per_minute: 60,
            prefix_digits: 4,
            per_client_per_minute: 60_000,
            resend_cooldown_seconds: 30,
            resend_cooldown_max_seconds: 3_600,
            allowed_countries: Vec::new(),
            blocked_countries: Vec::new(),
            record_only: false,
            verify_failures_per_phone_per_day: 10,
            verify_failures_per_user_per_day: 10,
        }
    }
}

/// Texts and templates other than OTPs (`[messages]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MessageSettings {
    /// Most SMS parts one text may take (GSM-7: 160 characters in one part, 153 per part after;
    /// UCS-2: 70, then 67). A longer text is refused with 422 `too_many_segments` before any
    /// provider is called. At least 1.
    pub max_segments: u32,
}

impl Default for MessageSettings {
    fn default() -> Self {
        Self { max_segments: 6 }
    }
}

/// Delivery receipts pushed by providers to `/v1/webhooks/{provider}/status` (`[receipts]`).
/// Twilio and Plivo sign receipts with their auth token; these cover the rest.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiptSettings {
    /// The gateway's public base URL as providers call it (`https://sms.example.com`), when a
    /// proxy in front changes the scheme or host: Twilio and Plivo sign the URL they called.
    /// Unset: the scheme and `Host` of each request.
    pub public_url: Option<String>,
    /// Shared token that receipt URLs of providers which cannot sign (MSG91, 2Factor) carry as
    /// `?token=` (`SMSGATE_RECEIPTS__URL_TOKEN`). Unset: their receipts are refused.
    pub url_token: Option<secrecy::SecretString>,
    /// Vonage's signature secret (Dashboard → Settings, signature method SHA-256 HMAC). Unset:
    /// Vonage receipts are refused.
    pub vonage_signature_secret: Option<secrecy::SecretString>,
}

/// Retention of the logs (`[retention]`, PostgreSQL). Monthly partitions of `sms_messages_log`
/// are always created ahead; what is past retention is archived (when `archive_dir` is set) and
/// dropped.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSettings {
    /// Months of `sms_messages_log` kept besides the current one; older monthly partitions are
    /// archived and dropped. 0 keeps every month.
    pub messages_months: u32,
    /// Months of `otp_logs` kept besides the current one; 0 keeps every row.
    pub otp_logs_months: u32,
    /// Days an expired OTP session is kept before it is deleted (never archived: it holds the
    /// code's HMAC).
    pub sessions_days: u32,
    /// Where archives go (gzip JSON Lines, each with a `.sha256`). Unset: what is past
    /// retention is dropped without an archive.
    pub archive_dir: Option<std::path::PathBuf>,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            messages_months: 0,
            otp_logs_months: 0,
            sessions_days: 30,
            archive_dir: None,
        }
    }
}
