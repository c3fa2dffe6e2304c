//! Every Prometheus metric smsgate exports, defined in this one place. Labels are low-cardinality
//! only (`provider`, `kind`, `outcome`, `reason`, `route`, `status`, `hook`, `result`, `country` (a calling code)): never a number or an id.

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets in seconds, from 0.5 ms: a healthy request takes a few milliseconds (the goal
/// is p99 under 10 ms), so the low buckets must resolve it; a provider call runs to seconds.
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The metrics of one running gateway (each `Application` has its own registry).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Provider calls by provider, message kind and outcome (accepted, throttled, unavailable,
    /// misconfigured, rejected, timeout).
    pub provider_requests: IntCounterVec,
    /// Provider call latency in seconds.
    pub provider_latency: HistogramVec,
    /// Failovers from one provider to the next, by the reason the first one failed.
    pub failovers: IntCounterVec,
    /// 429 cool-downs whose `Retry-After` exceeded `throttle_backoff_max_ms` and was cut to it.
    pub retry_after_capped: IntCounterVec,
    /// Breaker state per provider: 0 closed, 1 half-open, 2 open.
    pub breaker_state: IntGaugeVec,
    /// OTP sends by result (sent, unconfirmed, failed).
    pub otp_sends: IntCounterVec,
    /// OTP verifications by result (verified, wrong_code, expired, exhausted, ...).
    pub otp_verifications: IntCounterVec,
    /// HTTP requests by route pattern and status code.
    pub http_requests: IntCounterVec,
    /// HTTP request latency in seconds by route pattern.
    pub http_latency: HistogramVec,
    /// Requests refused by limits and the pumping guard, by reason (`recorded` when record-only).
    pub blocks: IntCounterVec,
    /// Attempt rows per group-commit statement.
    pub log_batch_rows: HistogramVec,
    /// Requests to the auth servers' hooks by hook (supabase, kratos, keycloak) and result
    /// (sent, unconfirmed, replayed, refused, failed, invalid, unauthorized, not_configured).
    pub hook_requests: IntCounterVec,
    /// Provider registry reloads by cause (notify, periodic, local, start).
    pub registry_reloads: IntCounterVec,
    /// The version of the provider registry in force.
    pub registry_version: IntGauge,
    /// Committed admin changes to the registry by action.
    pub admin_changes: IntCounterVec,
    /// Failed writes of a send's attempt log (each try, background retries included): a send
    /// whose provider call is not on record.
    pub attempt_log_write_errors: IntCounter,
    /// SMS parts of the messages providers accepted, by provider and kind (otp, transactional, promo).
    pub sms_parts: IntCounterVec,
    /// Delivery receipts by provider and status (delivered, undelivered, failed, duplicate,
    /// interim, refused, invalid).
    pub receipts: IntCounterVec,
    /// Delivered / (delivered + undelivered + failed) of the receipts each provider sent so far.
    pub delivered_ratio: prometheus::GaugeVec,
    /// From the attempt to its receipt's arrival, in seconds, per provider.
    pub receipt_latency: HistogramVec,
    /// Campaign messages by the state a worker left them in (sent, failed, skipped_opt_out,
    /// held_quiet_hours, queued, ambiguous).
    pub campaign_messages: IntCounterVec,
    /// Inbound opt-out webhooks by provider and result (opted_out, opted_in, ignored, refused).
    pub inbound_messages: IntCounterVec,
    /// Conversion (settled sessions verified / sent) per provider and destination country over
    /// the health window; absent until the provider has `health.min_sessions` there.
    pub provider_conversion: GaugeVec,
    /// 1 while a provider is degraded for a country, with why (`below_peers`, `below_baseline`,
    /// `receipts_failed`, `probes_failed`); 0 under `reason="none"` when it is not.
    pub provider_degraded: IntGaugeVec,
    /// Seconds the last provider-health refresh took (reading the counts and judging).
    pub health_refresh_seconds: prometheus::Gauge,
    /// Provider-health refreshes that failed: the verdict stays as it was.
    pub health_refresh_failures: prometheus::IntCounter,
    /// Synthetic probes by provider and result (`accepted`, `failed`).
    pub probes: IntCounterVec,
    /// `POST /v1/otp/resend` by result (`sent`, `refused`, `failed`).
    pub otp_resends: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| registered(&registry, IntCounterVec::new(Opts::new(name, help), labels));
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            registered(
                &registry,
                HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels),
            )
        };
        let provider_requests = counter(
            "smsgate_provider_requests_total",
            "Provider calls by provider, kind and outcome.",
            &["provider", "kind", "outcome"],
        );
        let provider_latency = histogram(
            "smsgate_provider_request_duration_seconds",
            "Provider call latency.",
            &["provider", "kind"],
            LATENCY_BUCKETS,
        );
        let failovers = counter(
            "smsgate_failovers_total",
            "Failovers from one provider to the next.",
            &["from", "to", "reason"],
        );
        let retry_after_capped = counter(
            "smsgate_retry_after_capped_total",
            "429 cool-downs whose Retry-After exceeded throttle_backoff_max_ms and was cut to it.",
            &["provider"],
        );
        let breaker_state = registered(
            &registry,
            IntGaugeVec::new(
                Opts::new("smsgate_breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open."),
                &["provider"],
            ),
        );
        let otp_sends = counter("smsgate_otp_sends_total", "OTP sends by result.", &["result"]);
        let otp_verifications = counter("smsgate_otp_verifications_total", "OTP verifications by result.", &["result"]);
        let http_requests = counter(
            "smsgate_http_requests_total",
            "HTTP requests by route and status.",
            &["route", "status"],
        );
        let http_latency = histogram(
            "smsgate_http_request_duration_seconds",
            "HTTP request latency.",
            &["route"],
            LATENCY_BUCKETS,
        );
        let blocks = counter(
            "smsgate_blocks_total",
            "Sends refused by limits or the pumping guard, by reason.",
            &["reason"],
        );
        let log_batch_rows = histogram(
            "smsgate_attempt_log_batch_rows",
            "Attempt rows per group commit.",
            &["store"],
            &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
        );
        let hook_requests = counter(
            "smsgate_hook_requests_total",
            "Requests to the auth servers' SMS hooks by hook and result.",
            &["hook", "result"],
        );
        let registry_reloads = counter(
            "smsgate_registry_reloads_total",
            "Provider registry loads by cause (notify, periodic, local, start).",
            &["cause"],
        );
        let registry_version = registered(
            &registry,
            IntGauge::new("smsgate_registry_version", "Version of the provider registry in force."),
        );
        let admin_changes = counter(
            "smsgate_admin_changes_total",
            "Committed admin changes to the provider registry by action.",
            &["action"],
        );
        let attempt_log_write_errors = registered(
            &registry,
            IntCounter::new(
                "smsgate_attempt_log_write_errors_total",
                "Failed writes of a send's attempt log, background retries included.",
            ),
        );
        let sms_parts = counter(
            "smsgate_sms_parts_total",
            "SMS parts of accepted messages by provider and kind.",
            &["provider", "kind"],
        );
        let receipts = counter(
            "smsgate_receipts_total",
            "Delivery receipts by provider and status.",
            &["provider", "status"],
        );
        let delivered_ratio = registered(
            &registry,
            prometheus::GaugeVec::new(
                Opts::new(
                    "smsgate_delivered_ratio",
                    "Delivered share of final delivery receipts per provider.",
                ),
                &["provider"],
            ),
        );
        let receipt_latency = histogram(
            "smsgate_receipt_latency_seconds",
            "Time from a provider attempt to its delivery receipt.",
            &["provider"],
            &[1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0],
        );
        let campaign_messages = counter(
            "smsgate_campaign_messages_total",
            "Campaign messages by the state a worker left them in.",
            &["outcome"],
        );
        let inbound_messages = counter(
            "smsgate_inbound_messages_total",
            "Inbound provider webhooks (replies such as STOP) by provider and result.",
            &["provider", "result"],
        );
        let provider_conversion = registered(
            &registry,
            GaugeVec::new(
                Opts::new(
                    "smsgate_provider_conversion_ratio",
                    "Settled OTP sessions verified / sent per provider and country over the health window.",
                ),
                &["provider", "country"],
            ),
        );
        let provider_degraded = registered(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "smsgate_provider_degraded",
                    "1 while a provider is degraded for a country (routed after healthy ones), by reason.",
                ),
                &["provider", "country", "reason"],
            ),
        );
        let health_refresh_seconds = registered(
            &registry,
            prometheus::Gauge::new(
                "smsgate_health_refresh_seconds",
                "Seconds the last provider-health refresh took (reading the conversion counts and judging).",
            ),
        );
        let health_refresh_failures = registered(
            &registry,
            prometheus::IntCounter::new(
                "smsgate_health_refresh_failures_total",
                "Provider-health refreshes that failed; the last verdict stays.",
            ),
        );
        let probes = counter(
            "smsgate_probes_total",
            "Synthetic probes by provider and result.",
            &["provider", "result"],
        );
        let otp_resends = counter("smsgate_otp_resends_total", "OTP resends by result.", &["result"]);
        Self {
            sms_parts,
            receipts,
            delivered_ratio,
            receipt_latency,
            registry,
            provider_requests,
            provider_latency,
            failovers,
            retry_after_capped,
            breaker_state,
            otp_sends,
            otp_verifications,
            http_requests,
            http_latency,
            blocks,
            log_batch_rows,
            hook_requests,
            registry_reloads,
            registry_version,
            admin_changes,
            attempt_log_write_errors,
            campaign_messages,
            inbound_messages,
            provider_conversion,
            provider_degraded,
            health_refresh_seconds,
            health_refresh_failures,
            probes,
            otp_resends,
        }
    }

    /// The text exposition format served at `/metrics`.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// `metric`, registered with `registry`.
fn registered<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: prometheus::Result<M>) -> M {
    let metric = metric.expect("valid metric");
    registry.register(Box::new(metric.clone())).expect("metric registered once");
    metric
}
