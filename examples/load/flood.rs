//! The abuse drill, under the default limits: one end-user IP asks for codes to many phones
//! sharing one prefix, replays one request under one `Idempotency-Key`, and hammers one phone.
//! Afterwards the provider calls the simulator counted must not exceed what the limits allow.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::stream::{self, StreamExt};
use serde_json::json;
use smsgate::config::LimitSettings;

use super::Target;

/// The end user's address every request claims (a documentation range; it is only a body field).
const IP: &str = "203.0.113.7";

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Part {
    PrefixSpread,
    Replay,
    SamePhone,
}

pub struct Drill {
    /// (part, status) → requests.
    pub statuses: BTreeMap<(&'static str, u16), u64>,
    /// Answers that carried `Idempotent-Replayed: true`.
    pub replayed: u64,
    /// Sends the limits admit at most over the minute windows the drill touched.
    pub max_sends: u64,
    pub windows: u64,
}

pub async fn run(target: &Target, concurrency: usize, per_part: usize) -> Drill {
    let mut jobs = Vec::new();
    for i in 0..per_part {
        // Same country code and first four national digits: one `prefix:m:91-9876` counter.
        jobs.push((Part::PrefixSpread, format!("+9198765{:05}", i), None));
        jobs.push((Part::Replay, "+919812345678".to_string(), Some("flood-replay-1")));
        jobs.push((Part::SamePhone, "+919800000001".to_string(), None));
    }
    let first_minute = unix_minute();
    let answers: Vec<_> = stream::iter(jobs)
        .map(|(part, phone, key)| async move {
            let body = json!({ "phone": phone, "client_ip": IP });
            (part, target.post("/v1/otp/send", &body, key).await)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let windows = unix_minute() - first_minute + 1;
    let mut statuses = BTreeMap::new();
    let mut replayed = 0;
    for (part, answer) in answers {
        let status = match answer {
            Ok((status, was_replay)) => {
                replayed += u64::from(was_replay);
                status
            }
            Err(_) => 0,
        };
        *statuses.entry((label(part), status)).or_insert(0) += 1;
    }
    // Every request shares one end-user IP, so the per-IP window bounds all sends together.
    let max_sends = u64::from(LimitSettings::default().per_ip_per_minute) * windows;
    Drill {
        statuses,
        replayed,
        max_sends,
        windows,
    }
}

fn label(part: Part) -> &'static str {
    match part {
        Part::PrefixSpread => "many phones, one prefix",
        Part::Replay => "one Idempotency-Key replayed",
        Part::SamePhone => "one phone repeatedly",
    }
}

fn unix_minute() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() / 60).unwrap_or(0)
}
