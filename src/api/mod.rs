//! The HTTP edge: routes, request and response types, authentication and error mapping.
//! Handlers parse, call the gateway, and shape the answer; they hold no business rules.

mod admin;
mod auth;
mod campaigns;
mod client_ip;
mod deadline;
mod error;
mod fields;
mod hooks;
mod idempotency;
mod ops;
mod opt_outs;
mod otp;
mod receipts;
mod sms;
mod users;

use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::error::JsonPayloadError;
use actix_web::{web, HttpRequest, HttpResponse};

pub use auth::{new_token, sha256_hex, Caller, Clients};
pub use error::ApiError;

use crate::net::Cidr;
use crate::phone::Phone;
use crate::service::Gateway;

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

/// Longest `client_ip` accepted (an IPv6 address with an IPv4 tail is 45).
const MAX_IP: usize = 64;

/// What every handler can reach.
pub struct AppState {
    pub gateway: Arc<Gateway>,
    pub clients: Arc<Clients>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// Networks allowed to call the API; empty allows all.
    pub allowed_callers: Vec<Cidr>,
    /// The hooks' own secrets and credentials (not the API's client tokens).
    pub hooks: Arc<crate::hooks::Hooks>,
    /// Twilio's auth token, which signs its inbound-message webhook (`[campaigns]`).
    pub twilio_inbound_token: Option<secrecy::SecretString>,
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
        let body_ip = body_ip.map(|ip| fields::identifier("client_ip", ip, MAX_IP)).transpose()?;
        client_ip::end_user_ip(body_ip, forwarded.as_deref(), peer, &self.trusted_proxies).map_err(ApiError::InvalidRequest)
    }

    pub fn parse_phone(&self, raw: &str) -> Result<Phone, ApiError> {
        Phone::parse(raw, &self.gateway.settings().otp.default_country).map_err(|e| ApiError::InvalidPhone(e.to_string()))
    }
}

/// Mounts every route on `cfg`.
pub fn configure(cfg: &mut web::ServiceConfig, max_body_bytes: usize) {
    let json = web::JsonConfig::default()
        .limit(max_body_bytes)
        .error_handler(move |err, _req| json_error(err, max_body_bytes).into());
    // Handlers that take `web::Query`/`web::Path` directly answer in the same shape.
    let query = web::QueryConfig::default().error_handler(|err, _req| ApiError::InvalidRequest(err.to_string()).into());
    let path = web::PathConfig::default().error_handler(|err, _req| ApiError::InvalidRequest(err.to_string()).into());
    cfg.app_data(json)
        .app_data(query)
        .app_data(path)
        .app_data(web::PayloadConfig::new(max_body_bytes))
        .service(at("/v1/otp/send").route(web::post().to(otp::send_route::<V1>)))
        .service(at("/v1/otp/verify").route(web::post().to(otp::verify_route::<V1>)))
        .service(at("/v1/sms/send").route(web::post().to(sms::text_route::<V1>)))
        .service(at("/v1/sms/template").route(web::post().to(sms::template_route::<V1>)))
        .service(at("/v1/otp/sessions/{id}").route(web::get().to(otp::session_status)))
        .service(
            at("/v1/users/{user_id}/contact")
                .route(web::get().to(users::get_contact))
                .route(web::put().to(users::put_contact)),
        )
        // Campaigns read their own (larger, JSON or CSV) bodies under `[campaigns] max_body_bytes`.
        .service(
            at("/v1/campaigns")
                .route(web::post().to(campaigns::create))
                .route(web::get().to(campaigns::list)),
        )
        .service(at("/v1/campaigns/{id}").route(web::get().to(campaigns::get)))
        .service(at("/v1/campaigns/{id}/{action}").route(web::post().to(campaigns::control)))
        .service(
            at("/v1/opt-outs")
                .route(web::post().to(opt_outs::add))
                .route(web::get().to(opt_outs::list))
                .route(web::delete().to(opt_outs::remove)),
        )
        .service(at("/v1/webhooks/twilio/inbound").route(web::post().to(opt_outs::twilio_inbound)))
        .service(at("/v1/routing/explain").route(web::get().to(ops::explain)))
        .service(at("/v1/admin/providers").route(web::get().to(admin::providers)))
        .service(at("/v1/admin/clients").route(web::get().to(admin::clients)))
        .service(at("/v1/admin/attempts").route(web::get().to(admin::attempts)))
        // Auth servers' SMS hooks, each authenticated the way its sender signs.
        .service(
            at("/v1/hooks/supabase/send-sms")
                .app_data(web::PayloadConfig::new(max_body_bytes.max(hooks::SUPABASE_MAX_BODY)))
                .route(web::post().to(hooks::supabase)),
        )
        .service(at("/v1/hooks/kratos/sms").route(web::post().to(hooks::kratos)))
        .service(at("/v1/hooks/keycloak/sms").route(web::post().to(hooks::keycloak)))
        .service(at("/v1/webhooks/{provider}/status").route(web::post().to(receipts::status)))
        // The seed deployment's contracts, on the same handlers.
        .service(at("/api/sms/sendOtp").route(web::post().to(otp::send_route::<Seed>)))
        .service(at("/api/sms/verifyOtp").route(web::post().to(otp::verify_route::<Seed>)))
        .service(at("/api/sms/sendTemplate").route(web::post().to(sms::template_route::<Seed>)))
        .service(at("/otp/send").route(web::post().to(otp::send_route::<Seed>)))
        .service(at("/otp/verify").route(web::post().to(otp::verify_route::<Seed>)))
        .service(at("/sms/send-transactional").route(web::post().to(sms::text_route::<Seed>)))
        .service(at("/healthz").route(web::get().to(ops::healthz)))
        .service(at("/readyz").route(web::get().to(ops::readyz)))
        .service(at("/metrics").route(web::get().to(ops::metrics)));
}

/// A route whose other methods get 405 in the API's JSON error shape.
fn at(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(|| async { Err::<HttpResponse, _>(ApiError::MethodNotAllowed) }))
}

/// Answers unknown routes with the same JSON error shape as everything else.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound)
}

fn json_error(err: JsonPayloadError, limit: usize) -> ApiError {
    match err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => ApiError::PayloadTooLarge(limit),
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
        JsonPayloadError::Payload(e) if deadline::is_body_timeout(&e) => ApiError::RequestTimeout,
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
    use tracing::Instrument;

    let started = Instant::now();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let metrics = req.app_data::<web::Data<AppState>>().map(|s| s.gateway.metrics().clone());
    let request_id = request_id(req.headers());
    // Every log line of the request carries its id and route; the answer carries the id too.
    let span = tracing::info_span!("request", id = %request_id, route = %route);
    let fut = span.in_scope(|| srv.call(req));
    async move {
        let mut res = fut.await?;
        if let Some(m) = metrics {
            m.http_requests.with_label_values(&[&route, res.status().as_str()]).inc();
            m.http_latency.with_label_values(&[&route]).observe(started.elapsed().as_secs_f64());
        }
        if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&request_id) {
            res.headers_mut()
                .insert(actix_web::http::header::HeaderName::from_static("x-request-id"), value);
        }
        Ok(res)
    }
    .instrument(span)
}

/// The caller's `X-Request-Id` when it is a plain token (1 to 64 of `A-Z a-z 0-9 - _ . :`), so a
/// proxy's id ties its logs to ours; otherwise a fresh one.
fn request_id(headers: &actix_web::http::header::HeaderMap) -> String {
    let given = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)));
    given.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string)
}

/// Gives every request body `server.body_timeout_ms` to arrive (see `deadline`).
pub fn bound_body<S, B>(
    mut req: actix_web::dev::ServiceRequest,
    srv: &S,
) -> impl std::future::Future<Output = Result<ServiceResponse<B>, actix_web::Error>>
where
    S: Service<actix_web::dev::ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    if let Some(state) = req.app_data::<web::Data<AppState>>() {
        let timeout = std::time::Duration::from_millis(state.gateway.settings().server.body_timeout_ms);
        deadline::bound_body(&mut req, timeout);
    }
    srv.call(req)
}
