//! Synthetic probes (`[[probes]]`): at each probe's interval, an OTP-shaped message to an owned
//! test number goes through every provider that serves the number, one by one, and its result
//! goes to `health` (probes failing in a row degrade the provider for that country). Probes take
//! no user limit, open no session, write no attempt row, and log as `probe`.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::router::Router;
use crate::config::ProbeConfig;
use crate::phone::Phone;
use crate::providers::{MessageBody, OutboundSms};

/// One round of `probe`: every provider that serves its number, once. Returns (provider,
/// accepted) for each provider tried.
pub async fn probe_once(router: &Router, probe: &ProbeConfig) -> Vec<(String, bool)> {
    let Ok(to) = Phone::parse(&probe.number, &probe.country) else {
        tracing::warn!(probe = true, country = %probe.country, "probe number is not a valid phone number; skipped");
        return Vec::new();
    };
    let code = crate::otp::generate_code(6);
    let body = MessageBody::Otp {
        text: format!("smsgate probe {code}"),
        code,
    };
    let names: Vec<String> = router
        .registry()
        .candidates(&body, &to, None)
        .iter()
        .map(|s| s.name().to_string())
        .collect();
    let mut results = Vec::new();
    for name in names {
        let sms = OutboundSms {
            id: Uuid::new_v4(),
            to: to.clone(),
            body: body.clone(),
        };
        let Some((ok, attempt)) = router.probe(&name, &sms).await else {
            continue;
        };
        let result = if ok { "accepted" } else { "failed" };
        tracing::info!(probe = true, provider = %name, to = %to.masked(), result, outcome = %attempt.outcome,
            response_time_ms = attempt.response_time_ms, "synthetic probe");
        router.metrics().probes.with_label_values(&[&name, result]).inc();
        router.health().record_probe(&name, to.country_code(), ok);
        results.push((name, ok));
    }
    results
}

/// Runs every configured probe at its interval, for the life of the process.
pub fn spawn_probes(router: Arc<Router>, probes: Vec<ProbeConfig>) {
    for probe in probes {
        let router = Arc::clone(&router);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(probe.interval_seconds));
            loop {
                tick.tick().await;
                probe_once(&router, &probe).await;
            }
        });
    }
}
