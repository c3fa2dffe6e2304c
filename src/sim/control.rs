//! `/_sim/*`: what the fakes delivered (`/_sim/messages`, so tests can play users entering the
//! codes they received) and lost to a blackhole, how often they were called, and their faults at
//! runtime.
//! Served on the control port and on every provider port.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::faults::Fault;
use super::names::{canonical, PROVIDERS};
use super::state::SimState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/_sim/messages")
            .route(web::get().to(messages))
            .route(web::delete().to(clear_messages)),
    )
    .route("/_sim/stats", web::get().to(stats))
    .route("/_sim/lost", web::get().to(lost))
    .service(
        web::resource("/_sim/faults")
            .route(web::get().to(faults))
            .route(web::post().to(set_fault)),
    )
    .route("/_sim/receipts", web::post().to(set_receipts));
}

#[derive(Deserialize)]
struct SetReceipts {
    provider: String,
    /// Where the provider's receipts go; `null` stops them.
    callback_url: Option<String>,
    /// `late:MS`, `missing`, `duplicate`, `failed`; `null` clears.
    #[serde(default)]
    fault: Option<String>,
}

/// `{"provider":"twilio","callback_url":"http://gw/v1/webhooks/twilio/status","fault":"late:500"}`.
async fn set_receipts(state: web::Data<SimState>, body: web::Bytes) -> HttpResponse {
    let bad = |message: String| HttpResponse::BadRequest().json(json!({ "error": message }));
    let request: SetReceipts = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad(format!("expected {{\"provider\":..,\"callback_url\":..,\"fault\":..}}: {e}")),
    };
    let Some(provider) = canonical(&request.provider) else {
        return bad(format!("`{}` is not one of {PROVIDERS:?}", request.provider));
    };
    let fault = match request.fault.as_deref().map(super::ReceiptFault::parse) {
        None => None,
        Some(Ok(fault)) => Some(fault),
        Some(Err(e)) => return bad(e),
    };
    state.receipts.set_callback(provider, request.callback_url.as_deref());
    state.receipts.set_fault(provider, fault);
    HttpResponse::Ok().json(json!({ "provider": provider, "callback_url": request.callback_url, "fault": request.fault }))
}

#[derive(Deserialize)]
struct MessagesQuery {
    to: Option<String>,
}

async fn messages(state: web::Data<SimState>, query: web::Query<MessagesQuery>) -> HttpResponse {
    HttpResponse::Ok().json(state.messages(query.to.as_deref()))
}

async fn clear_messages(state: web::Data<SimState>) -> HttpResponse {
    state.clear_messages();
    HttpResponse::NoContent().finish()
}

async fn stats(state: web::Data<SimState>) -> HttpResponse {
    let calls: BTreeMap<&str, u64> = PROVIDERS.iter().map(|p| (*p, state.calls(p))).collect();
    HttpResponse::Ok().json(calls)
}

/// Messages each provider accepted and a blackhole swallowed: what a drill lost.
async fn lost(state: web::Data<SimState>) -> HttpResponse {
    let lost = state.lost();
    let table: BTreeMap<&str, u64> = PROVIDERS.iter().map(|p| (*p, lost.get(p).copied().unwrap_or(0))).collect();
    HttpResponse::Ok().json(table)
}

fn fault_table(state: &SimState) -> BTreeMap<&'static str, Option<String>> {
    PROVIDERS.iter().map(|p| (*p, state.fault(p).map(|f| f.to_string()))).collect()
}

async fn faults(state: web::Data<SimState>) -> HttpResponse {
    HttpResponse::Ok().json(fault_table(&state))
}

#[derive(Deserialize)]
struct SetFault {
    provider: String,
    fault: Option<String>,
}

/// `{"provider":"twilio","fault":"500@30%"}` sets, `"fault":null` or `"ok"` clears.
async fn set_fault(state: web::Data<SimState>, body: web::Bytes) -> HttpResponse {
    let bad = |message: String| HttpResponse::BadRequest().json(json!({ "error": message }));
    let request: SetFault = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad(format!("expected {{\"provider\":..,\"fault\":..}}: {e}")),
    };
    let Some(provider) = canonical(&request.provider) else {
        return bad(format!("`{}` is not one of {PROVIDERS:?}", request.provider));
    };
    let fault = match request.fault.as_deref().map(Fault::parse_setting) {
        None => None,
        Some(Ok(fault)) => fault,
        Some(Err(e)) => return bad(e),
    };
    tracing::info!(provider, fault = ?fault.as_ref().map(|f| f.to_string()), "sim: fault set");
    state.set_fault(provider, fault);
    HttpResponse::Ok().json(fault_table(&state))
}
