//! `[campaigns]`: the campaign queue's workers, request limits, opt-out webhooks and quiet hours.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CampaignSettings {
    /// Worker tasks per instance claiming queued campaign messages; 0 runs none here.
    pub workers: usize,
    /// Messages a worker claims per batch.
    pub batch_size: u32,
    /// How long a claimed batch is a worker's; a worker that dies is replaced after this.
    pub lease_seconds: u32,
    /// How often an idle worker looks for work, in milliseconds.
    pub poll_ms: u64,
    /// Share of each provider's `max_per_second` kept for OTP and single sends: campaigns, all
    /// instances together, use at most the rest (less the OTP calls of the last moments).
    pub otp_reserve_percent: u32,
    /// Most recipients in one campaign (more is refused with 422 `too_many_recipients`).
    pub max_recipients: usize,
    /// Largest campaign request body (JSON or CSV), in bytes (more is 413 `payload_too_large`).
    pub max_body_bytes: usize,
    /// Environment variable holding the Twilio auth token that signs inbound-message webhooks
    /// (`X-Twilio-Signature`); unset or empty: the inbound webhook answers 404.
    pub twilio_auth_token_env: String,
    /// The public URL prefix Twilio calls (e.g. `https://sms.example.com`), when a proxy
    /// changes scheme or host; the signature covers the full URL. Unset: the request's own.
    pub public_base_url: Option<String>,
    /// Quiet hours by number prefix (a calling code such as "1", or longer such as "1808" for
    /// one area code; the longest that matches a number is its rule), in the recipient's local
    /// time: promotional messages wait until the window ends.
    pub quiet_hours: BTreeMap<String, QuietHours>,
}

/// A daily window in which promotional messages are held, on the recipient's wall clock: an
/// IANA zone (`time_zone`, daylight saving time followed) or a fixed offset from UTC, not both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// Local start, "HH:MM" (inclusive).
    pub start: String,
    /// Local end, "HH:MM" (exclusive); before `start` means the window spans midnight.
    pub end: String,
    /// The recipients' zone in the tz database, e.g. "America/New_York".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// The offset from UTC in minutes (IST: 330), for a zone without daylight saving time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utc_offset_minutes: Option<i32>,
}

impl QuietHours {
    /// Why this rule cannot be used, with the key at fault (relative to the rule's table).
    pub fn invalid(&self) -> Option<(&'static str, String)> {
        if crate::config::parse_hhmm(&self.start).is_none() || crate::config::parse_hhmm(&self.end).is_none() {
            return Some(("start", "start and end must be \"HH:MM\"".into()));
        }
        match (&self.time_zone, self.utc_offset_minutes) {
            (Some(_), Some(_)) => Some(("time_zone", "set time_zone or utc_offset_minutes, not both".into())),
            (None, None) => Some(("time_zone", "set time_zone (e.g. \"Asia/Kolkata\") or utc_offset_minutes".into())),
            (Some(zone), None) if zone.parse::<chrono_tz::Tz>().is_err() => Some((
                "time_zone",
                format!("{zone:?} is not a zone of the tz database (e.g. \"America/New_York\")"),
            )),
            (None, Some(minutes)) if minutes.abs() > 14 * 60 => Some(("utc_offset_minutes", "must be within ±840".into())),
            _ => None,
        }
    }
}

impl Default for CampaignSettings {
    fn default() -> Self {
        Self {
            workers: 2,
            batch_size: 50,
            lease_seconds: 60,
            poll_ms: 200,
            otp_reserve_percent: 20,
            max_recipients: 100_000,
            max_body_bytes: 8 * 1024 * 1024,
            twilio_auth_token_env: "TWILIO_AUTH_TOKEN".into(),
            public_base_url: None,
            // Indian rules: no promotional SMS between 21:00 and 09:00 IST.
            quiet_hours: BTreeMap::from([(
                "91".to_string(),
                QuietHours {
                    start: "21:00".into(),
                    end: "09:00".into(),
                    time_zone: Some("Asia/Kolkata".into()),
                    utc_offset_minutes: None,
                },
            )]),
        }
    }
}

/// Minutes after midnight of an "HH:MM" time.
pub fn parse_hhmm(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && text.len() == 5).then_some(h * 60 + m)
}
