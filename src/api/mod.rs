//! The HTTP edge: routes, request and response types, authentication and error mapping.
//! Handlers parse, call the gateway, and shape the answer; they hold no business rules.

mod admin;
mod auth;
mod error;
mod idempotency;
mod ops;
mod otp;
mod sms;
mod users;

use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::error::JsonPayloadError;
use actix_web::{web, HttpRequest, HttpResponse};

pub use auth::{new_token, sha256_hex, Caller, Clients};
pub use error::ApiError;

use crate::gateway::Gateway;
use crate::net::Cidr;
use crate::phone::Phone;

/// Which response shape a route speaks: the `/v1` API, or the seed deployment's contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    V1,
    Seed,
}

/// Picks a handler's shape where the route is mounted: `otp::send_route::<V1>`.
pub trait Speaks {
    const SHAPE: Shape;
}

pub struct V1;
pub struct Seed;

impl Speaks for V1 {
    const SHAPE: Shape = Shape::V1;
}

impl Speaks for Seed {
    const SHAPE: Shape = Shape::Seed;
}

/// What every handler can reach.
pub struct AppState {
    pub gateway: Arc<Gateway>,
    pub clients: Arc<Clients>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// Networks allowed to call the API; empty allows all.
    pub allowed_callers: Vec<Cidr>,
}

impl AppState {
    /// The end user's IP from the body's `client_ip` or a trusted proxy's `X-Forwarded-For`.
    /// Every `X-Forwarded-For` line counts, in order (one list, as HTTP defines repeated fields):
    /// a proxy may add its own line after the client's, and the client's first line is spoofable.
    pub fn client_ip(&self, req: &HttpRequest, body_ip: Option<&str>) -> Result<Option<std::net::IpAddr>, ApiError> {
        let lines: Option<Vec<&str>> = req.headers().get_all("x-forwarded-for").map(|v| v.to_str().ok()).collect();
        // An unreadable line makes the whole chain untrustworthy: no IP rather than a guess.
        let forwarded = lines.filter(|l| !l.is_empty()).map(|l| l.join(","));
        let peer = req.peer_addr().map(|a| a.ip());
        crate::limits::end_user_ip(body_ip, forwarded.as_deref(), peer, &self.trusted_proxies).map_err(ApiError::InvalidRequest)
    }

    pub fn parse_phone(&self, raw: &str) -> Result<Phone, ApiError> {
        Phone::parse(raw, &self.gateway.settings.otp.default_country).map_err(|e| ApiError::InvalidPhone(e.to_string()))
    }
}

/// Mounts every route on `cfg`.
pub fn configure(cfg: &mut web::ServiceConfig, max_body_bytes: usize) {
    let json = web::JsonConfig::default()
        .limit(max_body_bytes)
        .error_handler(move |err, _req| json_error(err, max_body_bytes).into());
    cfg.app_data(json)
        .app_data(web::PayloadConfig::new(max_body_bytes))
        .route("/v1/otp/send", web::post().to(otp::send_route::<V1>))
        .route("/v1/otp/verify", web::post().to(otp::verify_route::<V1>))
        .route("/v1/sms/send", web::post().to(sms::text_route::<V1>))
        .route("/v1/sms/template", web::post().to(sms::template_route::<V1>))
        .route("/v1/otp/sessions/{id}", web::get().to(otp::session_status))
        .route("/v1/users/{user_id}/contact", web::get().to(users::get_contact))
        .route("/v1/users/{user_id}/contact", web::put().to(users::put_contact))
        .route("/v1/routing/explain", web::get().to(ops::explain))
        .route("/v1/admin/providers", web::get().to(admin::providers))
        .route("/v1/admin/clients", web::get().to(admin::clients))
        .route("/v1/admin/attempts", web::get().to(admin::attempts))
        // The seed deployment's contracts, on the same handlers.
        .route("/api/sms/sendOtp", web::post().to(otp::send_route::<Seed>))
        .route("/api/sms/verifyOtp", web::post().to(otp::verify_route::<Seed>))
        .route("/api/sms/sendTemplate", web::post().to(sms::template_route::<Seed>))
        .route("/otp/send", web::post().to(otp::send_route::<Seed>))
        .route("/otp/verify", web::post().to(otp::verify_route::<Seed>))
        .route("/sms/send-transactional", web::post().to(sms::text_route::<Seed>))
        .route("/healthz", web::get().to(ops::healthz))
        .route("/readyz", web::get().to(ops::readyz))
        .route("/metrics", web::get().to(ops::metrics));
}

/// Answers unknown routes and methods with the same JSON error shape as everything else.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let known = [
        "/v1/otp/send",
        "/v1/otp/verify",
        "/v1/sms/send",
        "/v1/sms/template",
        "/v1/routing/explain",
        "/v1/admin/attempts",
        "/v1/admin/providers",
        "/v1/admin/clients",
        "/api/sms/sendOtp",
        "/api/sms/verifyOtp",
        "/api/sms/sendTemplate",
        "/otp/send",
        "/otp/verify",
        "/sms/send-transactional",
        "/healthz",
        "/readyz",
        "/metrics",
    ];
    let templated = ["/v1/otp/sessions/", "/v1/users/"].iter().any(|p| req.path().starts_with(p));
    if known.contains(&req.path()) || templated {
        Err(ApiError::MethodNotAllowed)
    } else {
        Err(ApiError::RouteNotFound)
    }
}

fn json_error(err: JsonPayloadError, limit: usize) -> ApiError {
    match err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => ApiError::PayloadTooLarge(limit),
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
        JsonPayloadError::Deserialize(e) if e.is_data() => ApiError::InvalidRequest(e.to_string()),
        JsonPayloadError::Deserialize(e) => ApiError::InvalidJson(format!("request body is not valid JSON: {e}")),
        other => ApiError::InvalidJson(other.to_string()),
    }
}

/// Counts every request by route pattern and status, and times it.
pub fn observe<S, B>(
    req: actix_web::dev::ServiceRequest,
    srv: &S,
) -> impl std::future::Future<Output = Result<ServiceResponse<B>, actix_web::Error>>
where
    S: Service<actix_web::dev::ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let started = Instant::now();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let metrics = req.app_data::<web::Data<AppState>>().map(|s| s.gateway.metrics.clone());
    let fut = srv.call(req);
    async move {
        let res = fut.await?;
        if let Some(m) = metrics {
            m.http_requests.with_label_values(&[&route, res.status().as_str()]).inc();
            m.http_latency.with_label_values(&[&route]).observe(started.elapsed().as_secs_f64());
        }
        Ok(res)
    }
}

/// Rejects strings that are empty or too long, naming the field.
fn bounded<'a>(field: &str, value: &'a str, max: usize) -> Result<&'a str, ApiError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ApiError::InvalidRequest(format!("`{field}` must not be empty")));
    }
    if v.chars().count() > max {
        return Err(ApiError::InvalidRequest(format!("`{field}` is longer than {max} characters")));
    }
    Ok(v)
}
