//! A provider's raw answer for an admin's test send or verify: captured only inside
//! [`capture_raw`] (normal sends never pay for it and never see it), cut to 2 KiB, with every
//! secret-looking value and every number the request carried masked to its last 4 characters.

use std::future::Future;
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde_json::Value;

use super::{read_body, Body, ProviderError};

/// The most of an answer shown.
pub const MAX_RAW_BYTES: usize = 2048;
/// Values the request carried shorter than this are not masked (codes, sender ids, flags).
const MIN_MASKED_LEN: usize = 8;
/// Headers that never carry a secret.
const PLAIN_HEADERS: [&str; 4] = ["content-type", "accept", "content-length", "user-agent"];

/// What the provider answered, as an admin may see it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawAnswer {
    pub http_status: Option<u16>,
    /// The body as JSON when it is JSON (and short enough to stay whole), else as text; or the
    /// transport failure when no answer came.
    pub body: Value,
}

tokio::task_local! {
    static CAPTURE: Arc<Mutex<Option<RawAnswer>>>;
}

/// Runs `fut` and returns the raw answer of the last provider exchange it made, if any.
pub async fn capture_raw<F: Future>(fut: F) -> (F::Output, Option<RawAnswer>) {
    let cell = Arc::new(Mutex::new(None));
    let out = CAPTURE.scope(Arc::clone(&cell), fut).await;
    let raw = cell.lock().unwrap_or_else(|e| e.into_inner()).take();
    (out, raw)
}

/// Whether the current task is capturing answers.
pub(super) fn capturing() -> bool {
    CAPTURE.try_with(|_| ()).is_ok()
}

/// `exchange` for a capturing task: the same request and classification, plus the answer.
pub(super) async fn exchange_captured(request: reqwest::RequestBuilder) -> Result<Body, ProviderError> {
    let (client, built) = request.build_split();
    let request = built.map_err(|e| ProviderError::from_transport(&e))?;
    let carried = carried_values(&request);
    let result = match client.execute(request).await {
        Ok(response) => read_body(response).await,
        Err(e) => Err(ProviderError::from_transport(&e)),
    };
    let raw = match &result {
        Ok(body) => RawAnswer {
            http_status: Some(body.status),
            body: shown(&body.text, &carried),
        },
        Err(e) => RawAnswer {
            http_status: e.http_status(),
            body: Value::String(mask(&e.to_string(), &carried)),
        },
    };
    let _ = CAPTURE.try_with(|cell| *cell.lock().unwrap_or_else(|e| e.into_inner()) = Some(raw));
    result
}

/// The answer masked, then cut: JSON when it is whole JSON, else text.
fn shown(text: &str, carried: &[String]) -> Value {
    let masked = mask(text, carried);
    if masked.len() <= MAX_RAW_BYTES {
        if let Ok(json) = serde_json::from_str::<Value>(&masked) {
            return json;
        }
        return Value::String(masked);
    }
    let mut cut = MAX_RAW_BYTES;
    while !masked.is_char_boundary(cut) {
        cut -= 1;
    }
    Value::String(format!("{}… ({} bytes in all)", &masked[..cut], masked.len()))
}

/// `text` with each carried value (longest first) and every phone number masked.
pub fn mask(text: &str, carried: &[String]) -> String {
    let mut out = text.to_string();
    for value in carried {
        if out.contains(value.as_str()) {
            out = out.replace(value.as_str(), &masked_value(value));
        }
    }
    crate::phone::mask_numbers_in(&out)
}

/// `••••` and the last 4 characters.
fn masked_value(value: &str) -> String {
    let tail: String = value.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("••••{tail}")
}

/// Every value the request carried that could be a secret or a number: URL path segments,
/// query values and credentials, header values (a Basic pair split in two), and form or JSON
/// body values; longest first so a value containing another is masked whole.
fn carried_values(request: &reqwest::Request) -> Vec<String> {
    let mut values = Vec::new();
    let url = request.url();
    values.push(url.username().to_string());
    values.extend(url.password().map(str::to_string));
    for segment in url.path_segments().into_iter().flatten() {
        values.push(percent_decode(segment));
    }
    values.extend(url.query_pairs().map(|(_, v)| v.into_owned()));
    for (name, value) in request.headers() {
        if PLAIN_HEADERS.contains(&name.as_str()) {
            continue;
        }
        let Ok(value) = value.to_str() else { continue };
        match value.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("basic") => {
                let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).unwrap_or_default();
                let pair = String::from_utf8_lossy(&decoded).into_owned();
                values.extend(pair.split(':').map(str::to_string));
            }
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => values.push(rest.trim().to_string()),
            _ => values.push(value.to_string()),
        }
    }
    if let Some(bytes) = request.body().and_then(|b| b.as_bytes()) {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(json) => json_values(&json, &mut values),
            Err(_) => values.extend(url::form_urlencoded::parse(bytes).map(|(_, v)| v.into_owned())),
        }
    }
    values.retain(|v| v.chars().count() >= MIN_MASKED_LEN);
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    values.dedup();
    values
}

fn json_values(json: &Value, out: &mut Vec<String>) {
    match json {
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Array(items) => items.iter().for_each(|v| json_values(v, out)),
        Value::Object(map) => map.values().for_each(|v| json_values(v, out)),
        _ => {}
    }
}

fn percent_decode(segment: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| segment.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> reqwest::Request {
        reqwest::Client::new()
            .post("https://api.example/v1/sk_live_abcdef123456/send?apikey=qwertyuiop42")
            .basic_auth("AC0123456789", Some("tok_secret_9876"))
            .form(&[("to", "+919876543210"), ("from", "ACME")])
            .build()
            .unwrap()
    }

    #[test]
    fn every_secret_and_number_the_request_carried_is_masked_in_the_answer() {
        let carried = carried_values(&request());
        let answer = r#"{"account":"AC0123456789","key":"sk_live_abcdef123456","q":"qwertyuiop42","token":"tok_secret_9876","to":"+919876543210","bare":"919876543210","from":"ACME"}"#;
        let shown = shown(answer, &carried);
        let text = shown.to_string();
        for secret in [
            "AC0123456789",
            "sk_live_abcdef123456",
            "qwertyuiop42",
            "tok_secret_9876",
            "9876543210",
        ] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(shown["key"], "••••3456");
        assert_eq!(shown["token"], "••••9876");
        assert_eq!(shown["from"], "ACME", "short values are kept");
    }

    #[test]
    fn a_long_answer_is_cut_to_2_kib_after_masking_and_shown_as_text() {
        let carried = vec!["sk_live_abcdef123456".to_string()];
        let long = format!("{}sk_live_abcdef123456", "é".repeat(1500));
        let shown = shown(&long, &carried);
        let text = shown.as_str().expect("a cut answer is text");
        assert!(text.len() <= MAX_RAW_BYTES + 40, "{}", text.len());
        assert!(text.ends_with(&format!(
            "({} bytes in all)",
            long.len() - "sk_live_abcdef123456".len() + "••••3456".len()
        )));
        assert!(!text.contains("sk_live"));
    }

    #[test]
    fn a_short_non_json_answer_is_text() {
        assert_eq!(shown("OK 12345", &[]), Value::String("OK 12345".into()));
    }

    #[tokio::test]
    async fn nothing_is_captured_outside_a_capture_and_the_inner_value_inside() {
        assert!(!capturing());
        let ((), raw) = capture_raw(async {
            assert!(capturing());
        })
        .await;
        assert_eq!(raw, None);
    }
}
