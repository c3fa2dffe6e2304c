//! Test doubles. For the adapters: a capture HTTP server on 127.0.0.1 port 0 that records every
//! request and answers each with one canned reply, plus builders for configs, bodies and messages.
//! The one such server in the crate: every adapter's tests and `spec_checks` use it. For the
//! router and the benches: `Scripted`, an in-process provider answering from a script.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::{Body, BuildContext, BuildError, MessageBody, OutboundSms};
use crate::config::{CommonKeys, ProviderConfig, Settings};
use crate::phone::Phone;

mod scripted;
pub use scripted::{Reply, Scripted};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Captured {
    pub method: String,
    pub path: String,
    /// The raw query string, when there was one.
    pub raw_query: Option<String>,
    headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Captured {
    /// A header value by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The request target as sent on the request line: the path and any `?query`.
    pub fn target(&self) -> String {
        match &self.raw_query {
            Some(query) => format!("{}?{query}", self.path),
            None => self.path.clone(),
        }
    }

    /// The decoded query pairs.
    pub fn query(&self) -> BTreeMap<String, String> {
        decode_pairs(self.raw_query.as_deref().unwrap_or("").as_bytes())
    }

    /// The body decoded as `application/x-www-form-urlencoded`.
    pub fn form(&self) -> BTreeMap<String, String> {
        decode_pairs(&self.body)
    }

    /// The form fields in the order sent, repeats kept (for order and duplicate checks).
    pub fn form_pairs(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body).into_owned().collect()
    }

    /// The body parsed as JSON (panics when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }

    /// The `user:password` of a basic `Authorization` header.
    pub fn basic_auth(&self) -> Option<String> {
        use base64::Engine as _;
        let encoded = self.header("authorization")?.strip_prefix("Basic ")?;
        let raw = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
        String::from_utf8(raw).ok()
    }
}

fn decode_pairs(raw: &[u8]) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

/// A server that answers every request with the same status, headers and body.
pub struct CaptureServer {
    pub base_url: String,
    requests: mpsc::UnboundedReceiver<Captured>,
}

impl CaptureServer {
    pub async fn start(status: u16, body: &str) -> Self {
        Self::start_with(status, &[], body).await
    }

    pub async fn start_with(status: u16, headers: &[(&str, &str)], body: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let mut reply = format!(
            "HTTP/1.1 {status} Canned\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (k, v) in headers {
            reply.push_str(&format!("{k}: {v}\r\n"));
        }
        reply.push_str("\r\n");
        reply.push_str(body);
        let (tx, requests) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_one(stream, reply.clone(), tx.clone()));
            }
        });
        Self { base_url, requests }
    }

    /// The next request the server received (panics after five seconds without one).
    pub async fn request(&mut self) -> Captured {
        tokio::time::timeout(Duration::from_secs(5), self.requests.recv())
            .await
            .expect("a request within 5 s")
            .expect("server running")
    }

    /// Every request received and not yet taken, oldest first. A request is recorded before it
    /// is answered, so once an adapter call returns, every request it made is here.
    pub fn received(&mut self) -> Vec<Captured> {
        std::iter::from_fn(|| self.requests.try_recv().ok()).collect()
    }

    /// The only request received; panics when there were none or several.
    pub fn single(&mut self) -> Captured {
        let all = self.received();
        assert_eq!(all.len(), 1, "expected exactly one request, got {all:?}");
        all.into_iter().next().expect("one request")
    }
}

/// Reads one request, records it, then answers it.
async fn serve_one(mut stream: TcpStream, reply: String, record: mpsc::UnboundedSender<Captured>) -> Option<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_string();
    let target = request_line.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let (path, raw_query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target, None),
    };
    let _ = record.send(Captured {
        method,
        path,
        raw_query,
        headers,
        body,
    });
    stream.write_all(reply.as_bytes()).await.ok()?;
    let _ = stream.shutdown().await;
    Some(())
}

/// One provider entry from TOML written as if under `[[providers]]`, as its kind's config
/// struct (`C` is usually inferred from the adapter's `build`).
pub fn provider_config<C: DeserializeOwned>(toml: &str) -> C {
    let settings = Settings::from_toml(&format!("[[providers]]\n{toml}")).expect("valid TOML");
    typed(settings.providers.into_iter().next().expect("one provider"))
}

/// Owned key/value pairs, to compare with `Captured::form_pairs`.
pub fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// One provider entry from JSON: `{"name": name, "kind": kind}` plus the keys of `extra`.
pub fn json_config<C: DeserializeOwned>(name: &str, kind: &str, extra: serde_json::Value) -> C {
    let mut config = serde_json::json!({"name": name, "kind": kind});
    let extra = extra.as_object().expect("extra keys as a JSON object").clone();
    config.as_object_mut().expect("an object").extend(extra);
    let config: ProviderConfig = serde_json::from_value(config).expect("a valid provider config");
    typed(config)
}

/// The kind's own struct inside `config`; panics when `C` is another kind's.
fn typed<C: DeserializeOwned>(config: ProviderConfig) -> C {
    let mut value = serde_json::to_value(&config).expect("a provider config serializes");
    value.as_object_mut().expect("an object").remove("kind");
    serde_json::from_value(value).unwrap_or_else(|e| panic!("not a `{}` config: {e}", config.kind()))
}

/// Builds an adapter from `config` with `secrets` as the environment.
pub fn build_with<C: CommonKeys, P>(
    config: &C,
    secrets: &[(&str, &str)],
    build: impl Fn(&C, &BuildContext<'_>) -> Result<P, BuildError>,
) -> Result<P, BuildError> {
    let env: HashMap<String, String> = secrets.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let lookup = move |k: &str| env.get(k).cloned();
    let ctx = BuildContext {
        common: config.common(),
        http: super::Clients::default_client(),
        secrets: &lookup,
    };
    build(config, &ctx)
}

/// An answer as `read_body` would return it.
pub fn body(status: u16, text: &str) -> Body {
    Body {
        status,
        retry_after: None,
        text: text.to_string(),
        json: serde_json::from_str(text).ok(),
    }
}

/// The malformed answers every adapter must read as `Unavailable`.
pub const MALFORMED: &[&str] = &[
    "<html><body><h1>502 Bad Gateway</h1></body></html>",
    "",
    "{\"type\":\"succ",
    "{\"status\":\"success\",\"messages\":[",
];

pub fn phone() -> Phone {
    Phone::parse("+919876543210", "91").expect("valid phone")
}

fn sms(body: MessageBody) -> OutboundSms {
    OutboundSms {
        id: uuid::Uuid::nil(),
        to: phone(),
        body,
    }
}

pub fn otp(code: &str, text: &str) -> OutboundSms {
    sms(MessageBody::Otp {
        code: code.into(),
        text: text.into(),
    })
}

pub fn text(text: &str) -> OutboundSms {
    sms(MessageBody::Text { text: text.into() })
}

pub fn template(name: &str, vars: &[&str]) -> OutboundSms {
    sms(MessageBody::Template {
        name: name.into(),
        vars: vars.iter().map(|v| v.to_string()).collect(),
    })
}
