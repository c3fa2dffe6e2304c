//! Reading a provider's HTTP answer the same way in every adapter: status, `Retry-After`, and a
//! body that may be JSON, an HTML error page, empty or cut short.

use std::time::Duration;

use super::ProviderError;

/// Bodies larger than this are not provider answers; they are refused as `Unavailable`.
const MAX_BODY_BYTES: usize = 256 * 1024;

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
}
