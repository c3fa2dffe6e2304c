//! `http`: a provider configured entirely in `providers.toml` — its request (method, URL,
//! headers, form or JSON body, all templates with `{placeholder}`s) and how its answer reads
//! (success statuses and field, reference field, throttle and reject statuses).

mod template;

use async_trait::async_trait;
use reqwest::header::{HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::{
    exchange, Accepted, Body, BuildContext, BuildError, Capabilities, MessageBody, OtpSupport, OutboundSms, Provider, ProviderError,
};
use crate::config::{HttpConfig, HttpSpec};
use template::{Escape, Placeholder, Template, Values};

enum BodyTemplate {
    Empty,
    Form(Vec<(String, Template)>),
    Json(Template),
}

pub struct HttpProvider {
    name: String,
    capabilities: Capabilities,
    http: super::Clients,
    spec: HttpSpec,
    method: reqwest::Method,
    url: Template,
    headers: Vec<(HeaderName, Template)>,
    body: BodyTemplate,
    secret: Option<SecretString>,
}

impl HttpProvider {
    pub fn build(config: &HttpConfig, ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        let spec = config
            .http
            .clone()
            .ok_or_else(|| ctx.invalid("http", "is required for kind `http`"))?;
        let parse = |key: &str, text: &str| Template::parse(text).map_err(|reason| ctx.invalid(&format!("http.{key}"), &reason));
        let method = match spec.method.to_ascii_uppercase().as_str() {
            "GET" => reqwest::Method::GET,
            "POST" => reqwest::Method::POST,
            _ => return Err(ctx.invalid("http.method", "must be GET or POST")),
        };
        let url = parse("url", &spec.url)?;
        match url::Url::parse(&url.render(&sample(), Escape::Url)) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => return Err(ctx.invalid("http.url", "must be an http or https URL")),
        }
        let mut headers = Vec::new();
        for (name, value) in &spec.headers {
            let key = format!("headers.{name}");
            let header =
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| ctx.invalid(&format!("http.{key}"), "is not a header name"))?;
            headers.push((header, parse(&key, value)?));
        }
        let body = match (&spec.form, &spec.json) {
            (Some(_), Some(_)) => return Err(ctx.invalid("http.json", "cannot be combined with http.form")),
            (Some(form), None) => BodyTemplate::Form(
                form.iter()
                    .map(|(k, v)| Ok((k.clone(), parse(&format!("form.{k}"), v)?)))
                    .collect::<Result<_, BuildError>>()?,
            ),
            (None, Some(json)) => {
                let template = parse("json", json)?;
                if let Err(e) = serde_json::from_str::<Value>(&template.render(&sample(), Escape::Json)) {
                    let reason = format!("is not JSON once filled in: {e}");
                    return Err(ctx.invalid("http.json", &reason));
                }
                BodyTemplate::Json(template)
            }
            (None, None) => BodyTemplate::Empty,
        };
        if method == reqwest::Method::GET && !matches!(body, BodyTemplate::Empty) {
            return Err(ctx.invalid("http.method", "GET cannot carry a form or json body"));
        }
        if spec.success_status.is_empty() {
            return Err(ctx.invalid("http.success_status", "must list at least one status"));
        }
        if spec.success_value.is_some() && spec.success_field.is_none() {
            return Err(ctx.invalid("http.success_value", "needs http.success_field"));
        }
        if let Some(s) = spec.rejected_statuses.iter().find(|s| spec.success_status.contains(s)) {
            let reason = format!("lists {s}, which is also a success status");
            return Err(ctx.invalid("http.rejected_statuses", &reason));
        }
        let uses_secret = url.uses(Placeholder::Secret)
            || headers.iter().any(|(_, t)| t.uses(Placeholder::Secret))
            || match &body {
                BodyTemplate::Empty => false,
                BodyTemplate::Form(f) => f.iter().any(|(_, t)| t.uses(Placeholder::Secret)),
                BodyTemplate::Json(t) => t.uses(Placeholder::Secret),
            };
        let secret = if uses_secret {
            ctx.required("api_key_env", config.api_key_env.as_deref())?;
            config.api_key().map(|var| ctx.secret(var)).transpose()?
        } else {
            None
        };
        Ok(Self {
            name: ctx.common.name.to_string(),
            capabilities: Capabilities {
                otp: OtpSupport::Local,
                text: true,
                template: spec.templates,
                countries: ctx.countries(&[]),
            },
            http: ctx.http.clone(),
            spec,
            method,
            url,
            headers,
            body,
            secret,
        })
    }

    /// Refuses, as the message's own fault, a value that cannot go where the spec puts it: a
    /// header value holds no control character but tab, a URL path no CR, LF or NUL. Checked
    /// before rendering, so an invalid header left after it is the config's (or the secret's).
    fn refuse_unsafe_values(&self, values: &Values<'_>) -> Result<(), ProviderError> {
        let refuse = |p: Placeholder, place: &str| {
            ProviderError::rejected(
                None,
                "invalid_value",
                format!("{} holds a control character, which cannot go in the {place}", p.written()),
            )
        };
        for p in self.url.path_placeholders().filter(|p| *p != Placeholder::Secret) {
            if values.get(p).contains(['\r', '\n', '\0']) {
                return Err(refuse(p, "URL path"));
            }
        }
        let in_headers = self.headers.iter().flat_map(|(_, t)| t.placeholders());
        for p in in_headers.filter(|p| *p != Placeholder::Secret) {
            if values.get(p).chars().any(|c| c.is_control() && c != '\t') {
                return Err(refuse(p, "headers"));
            }
        }
        Ok(())
    }

    fn request(&self, values: &Values<'_>) -> Result<reqwest::RequestBuilder, ProviderError> {
        self.refuse_unsafe_values(values)?;
        // The URL and headers may carry the secret: errors name only the key, never the value.
        let url = url::Url::parse(&self.url.render(values, Escape::Url))
            .map_err(|_| ProviderError::misconfigured(None, "http.url is not a URL once filled in"))?;
        let mut request = self.http.request(self.method.clone(), url);
        for (name, template) in &self.headers {
            let value = HeaderValue::from_str(&template.render(values, Escape::Raw))
                .map_err(|_| ProviderError::misconfigured(None, format!("header {name} has an invalid value")))?;
            request = request.header(name, value);
        }
        Ok(match &self.body {
            BodyTemplate::Empty => request,
            BodyTemplate::Form(fields) => {
                let form: Vec<(&str, String)> = fields.iter().map(|(k, t)| (k.as_str(), t.render(values, Escape::Raw))).collect();
                request.form(&form)
            }
            BodyTemplate::Json(template) => request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(template.render(values, Escape::Json)),
        })
    }
}

/// Values that exercise every escape, to check templates at build.
fn sample() -> Values<'static> {
    Values {
        to: "+919876543210",
        to_digits: "919876543210",
        text: "a \"quoted\" text\n& more",
        otp: "123456",
        template: "template",
        vars: &[],
        secret: "secret",
    }
}

#[async_trait]
impl Provider for HttpProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, ProviderError> {
        let secret = self.secret.as_ref().map(|s| s.expose_secret()).unwrap_or("");
        let (to, to_digits) = (sms.to.e164(), sms.to.digits());
        let values = match &sms.body {
            MessageBody::Otp { code, text } => Values {
                to,
                to_digits,
                text,
                otp: code,
                secret,
                ..Values::default()
            },
            MessageBody::Text { text } => Values {
                to,
                to_digits,
                text,
                secret,
                ..Values::default()
            },
            MessageBody::Template { name, vars } => {
                if !self.spec.templates {
                    return Err(ProviderError::misconfigured(None, "templates are off (http.templates)"));
                }
                Values {
                    to,
                    to_digits,
                    template: name,
                    vars,
                    secret,
                    ..Values::default()
                }
            }
        };
        let body = exchange(self.request(&values)?).await?;
        Ok(Accepted::message(classify(&self.spec, &body)?, body.status))
    }
}

/// Maps an answer to its reference or error class by the spec's statuses and fields. Error
/// texts name statuses and fields only: a generic provider might echo the request's secret.
pub(crate) fn classify(spec: &HttpSpec, body: &Body) -> Result<Option<String>, ProviderError> {
    let status = body.status;
    if spec.retry_after_statuses.contains(&status) {
        return Err(ProviderError::throttled(Some(status), body.retry_after, format!("HTTP {status}")));
    }
    if spec.success_status.contains(&status) {
        if let Some(field) = &spec.success_field {
            let json = body.json_or_unavailable()?;
            let found = lookup(json, field);
            let ok = match (found, &spec.success_value) {
                (Some(v), Some(expected)) => scalar(v).as_deref() == Some(expected.as_str()),
                (Some(v), None) => !matches!(v, Value::Null | Value::Bool(false)) && v.as_str() != Some(""),
                (None, _) => false,
            };
            if !ok {
                let reason = format!("HTTP {status} but `{field}` does not say success");
                return Err(ProviderError::unavailable(Some(status), reason));
            }
        }
        let reference = spec
            .reference_field
            .as_deref()
            .and_then(|field| body.json.as_ref().and_then(|j| lookup(j, field)).and_then(scalar));
        return Ok(reference);
    }
    let reason = format!("HTTP {status}");
    Err(if spec.rejected_statuses.contains(&status) {
        ProviderError::rejected(Some(status), status.to_string(), reason)
    } else if matches!(status, 401 | 403) {
        ProviderError::misconfigured(Some(status), reason)
    } else {
        ProviderError::unavailable(Some(status), reason)
    })
}

/// Follows a dotted path through objects (by key) and arrays (by index).
fn lookup<'v>(json: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(json, |v, part| match v {
        Value::Object(map) => map.get(part),
        Value::Array(items) => items.get(part.parse::<usize>().ok()?),
        _ => None,
    })
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(value.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
