//! Sending a provider's HTTP request and reading its answer the same way in every adapter:
//! transport errors, status, `Retry-After`, and a body that may be JSON, an HTML error page,
//! empty or cut short.

use std::time::Duration;

use super::ProviderError;

/// Bodies larger than this are not provider answers; they are refused as `Unavailable`.
const MAX_BODY_BYTES: usize = 256 * 1024;

/// Who named the template of a send, and so whose fault a template the provider does not
/// know is: the operator's (open the breaker) or the request's (refuse that message only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TemplateOf {
    /// A template in the provider's config (the OTP template): an unknown one is misconfiguration.
    Config,
    /// The template a template send names: an unknown one is that request's mistake.
    Request,
}

/// A provider's answer, read whole.
#[derive(Debug, Clone)]
pub struct Body {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub text: String,
    /// The body parsed as JSON, when it is JSON.
    pub json: Option<serde_json::Value>,
}

impl Body {
    /// A string field of the JSON body (`"Status"`), when present.
    pub fn str_field(&self, key: &str) -> Option<&str> {
        self.json.as_ref()?.get(key)?.as_str()
    }

    /// What a 429 or a 5xx means whatever the body says: `Throttled` keeping `Retry-After`, or
    /// `Unavailable`. `None` for any other status, which the provider's own codes classify.
    pub fn throttled_or_server_error(&self) -> Option<ProviderError> {
        let status = Some(self.status);
        if self.status == 429 {
            Some(ProviderError::throttled(status, self.retry_after, "HTTP 429"))
        } else if self.status >= 500 {
            Some(ProviderError::unavailable(status, format!("HTTP {}", self.status)))
        } else {
            None
        }
    }

    /// The body as JSON, or `Unavailable` naming what came instead.
    pub fn json_or_unavailable(&self) -> Result<&serde_json::Value, ProviderError> {
        self.json.as_ref().ok_or_else(|| {
            let what = if self.text.trim().is_empty() {
                "an empty body"
            } else {
                "a body that is not JSON"
            };
            ProviderError::unavailable(Some(self.status), format!("HTTP {} with {what}", self.status))
        })
    }
}

/// Sends `request` and reads the answer whole. A transport error becomes `Unavailable` naming
/// only its kind: reqwest's own text names the URL, which may carry a key.
pub async fn exchange(request: reqwest::RequestBuilder) -> Result<Body, ProviderError> {
    // An admin's test send keeps the answer; every other send takes the plain path.
    if super::raw::capturing() {
        return super::raw::exchange_captured(request).await;
    }
    let response = request.send().await.map_err(|e| ProviderError::from_transport(&e))?;
    read_body(response).await
}

/// A JSON string or number as text (providers send ids and codes as either).
pub fn scalar_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads status, `Retry-After` and body; a transport error becomes `Unavailable`.
pub async fn read_body(response: reqwest::Response) -> Result<Body, ProviderError> {
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers());
    if response.content_length().is_some_and(|n| n as usize > MAX_BODY_BYTES) {
        return Err(ProviderError::unavailable(Some(status), "answer body too large"));
    }
    let bytes = response.bytes().await.map_err(|e| ProviderError::from_transport(&e))?;
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ProviderError::unavailable(Some(status), "answer body too large"));
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).ok();
    Ok(Body {
        status,
        retry_after,
        text,
        json,
    })
}

/// `Retry-After` in seconds (the HTTP-date form is rare from SMS APIs and is ignored), capped at an hour.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: f64 = value.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    #[test]
    fn retry_after_reads_seconds_and_ignores_junk() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("-3"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn only_429_and_5xx_fail_before_the_providers_own_codes_are_read() {
        let answer = |status| Body {
            status,
            retry_after: Some(Duration::from_secs(3)),
            text: r#"{"status":"success"}"#.into(),
            json: Some(serde_json::json!({"status": "success"})),
        };
        let throttled = ProviderError::throttled(Some(429), Some(Duration::from_secs(3)), "HTTP 429");
        assert_eq!(answer(429).throttled_or_server_error(), Some(throttled));
        assert_eq!(
            answer(503).throttled_or_server_error(),
            Some(ProviderError::unavailable(Some(503), "HTTP 503"))
        );
        for status in [200, 201, 400, 401, 404, 499] {
            assert_eq!(answer(status).throttled_or_server_error(), None, "{status}");
        }
    }
}
