//! The throughput run: `concurrency` workers post `/v1/otp/send` back to back, each to a phone
//! no other request used, until `seconds` have passed; then latency percentiles and status counts.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;

use super::Target;

#[derive(Default)]
pub struct Outcome {
    pub requests: u64,
    pub elapsed: Duration,
    /// Status code, or 0 for a request that got no answer.
    pub statuses: BTreeMap<u16, u64>,
    /// Latency of every request, in microseconds, sorted.
    pub latencies_us: Vec<u64>,
}

impl Outcome {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// The `q` quantile (0 to 1) in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() as f64 * q).ceil() as usize).clamp(1, self.latencies_us.len()) - 1;
        self.latencies_us[i] as f64 / 1000.0
    }
}

pub async fn run(target: &Target, concurrency: usize, seconds: u64) -> Outcome {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let stop = started + Duration::from_secs(seconds);
    let workers = (0..concurrency).map(|_| worker(target.clone(), Arc::clone(&next), stop));
    let parts = join_all(workers).await;
    let mut out = Outcome {
        elapsed: started.elapsed(),
        ..Outcome::default()
    };
    for (statuses, latencies) in parts {
        for (s, n) in statuses {
            *out.statuses.entry(s).or_default() += n;
        }
        out.latencies_us.extend(latencies);
    }
    out.requests = out.latencies_us.len() as u64;
    out.latencies_us.sort_unstable();
    out
}

async fn worker(target: Target, next: Arc<AtomicU64>, stop: Instant) -> (BTreeMap<u16, u64>, Vec<u64>) {
    let mut statuses = BTreeMap::new();
    let mut latencies = Vec::new();
    while Instant::now() < stop {
        // +91 9xxxxxxxxx: a fresh number per request, spread over many prefixes.
        let n = next.fetch_add(1, Ordering::Relaxed);
        let phone = format!("+919{:09}", (n * 7_919) % 1_000_000_000);
        let body = serde_json::json!({ "phone": phone });
        let sent = Instant::now();
        let status = match target.post("/v1/otp/send", &body, None).await {
            Ok((status, _)) => status,
            Err(_) => 0,
        };
        latencies.push(sent.elapsed().as_micros() as u64);
        *statuses.entry(status).or_insert(0) += 1;
    }
    (statuses, latencies)
}
