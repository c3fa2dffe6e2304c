//! Fake 2Factor (`https://2factor.in`): the key in the path, `{"Status","Details"}` answers, and
//! AUTOGEN codes it holds and VERIFYs once.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::common::{self, admit, FaultAnswer};
use super::state::{Check, SimMessage, SimState};

const NAME: &str = "2factor";

pub fn routes(cfg: &mut web::ServiceConfig) {
    // VERIFY first: its path also fits `{phone}/{otp}/{template}`.
    cfg.route("/API/V1/{key}/SMS/VERIFY/{session}/{otp}", web::get().to(verify))
        .route("/API/V1/{key}/SMS/VERIFY3/{phone}/{otp}", web::get().to(verify_by_number))
        .route("/API/V1/{key}/SMS/{phone}/{otp}/{template}", web::get().to(send_otp))
        .route("/API/V1/{key}/SMS/{phone}/{otp}", web::get().to(send_otp))
        .route("/API/V1/{key}/ADDON_SERVICES/SEND/TSMS", web::post().to(send_template));
}

fn success(details: &str) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "Status": "Success", "Details": details }))
}

/// 2Factor answers most errors with HTTP 200 and the reason in `Details`.
fn error(details: &str) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "Status": "Error", "Details": details }))
}

pub(super) fn fault_response(answer: FaultAnswer) -> HttpResponse {
    match answer {
        FaultAnswer::Status(status) => common::json(status, json!({ "Status": "Error", "Details": common::reason(status) })),
        FaultAnswer::Error(details) => error(&details),
        FaultAnswer::Throttle(secs) => common::throttled(secs, json!({ "Status": "Error", "Details": "Rate Limit Exceeded" })),
    }
}

fn key_ok(state: &SimState, key: &str) -> bool {
    key == state.credentials.api_key
}

async fn send_otp(state: web::Data<SimState>, path: web::Path<Vec<String>>) -> HttpResponse {
    let admitted = match admit(&state, NAME).await {
        Ok(a) => a,
        Err(answer) => return fault_response(answer),
    };
    let (key, phone, otp) = (&path[0], &path[1], &path[2]);
    if !key_ok(&state, key) {
        return error("Invalid API Key");
    }
    let Some(to) = common::indian_or_e164(phone) else {
        return error("Invalid Phone Number");
    };
    let code = if otp.to_ascii_uppercase().starts_with("AUTOGEN") {
        common::new_code()
    } else if common::is_code(otp) {
        otp.clone()
    } else {
        return error("Invalid OTP");
    };
    let session = common::uuid();
    state.hold_code(NAME, &session, &to, &code);
    if admitted.deliver {
        let mut message = SimMessage::new(NAME, &to, &session);
        message.code = Some(code);
        message.template = path.get(3).cloned();
        state.record(message);
    }
    success(&session)
}

async fn verify(state: web::Data<SimState>, path: web::Path<(String, String, String)>) -> HttpResponse {
    if let Err(answer) = admit(&state, NAME).await {
        return fault_response(answer);
    }
    let (key, session, otp) = path.into_inner();
    if !key_ok(&state, &key) {
        return error("Invalid API Key");
    }
    verify_answer(state.check_code(NAME, &session, &otp))
}

fn verify_answer(check: Check) -> HttpResponse {
    match check {
        Check::Matched => success("OTP Matched"),
        Check::Mismatch => error("OTP Mismatch"),
        Check::AlreadyUsed => error("OTP Expired"),
        Check::Unknown => error("Invalid Session"),
    }
}

/// VERIFY3: checks the newest unused code held for a number, without the session id.
async fn verify_by_number(state: web::Data<SimState>, path: web::Path<(String, String, String)>) -> HttpResponse {
    if let Err(answer) = admit(&state, NAME).await {
        return fault_response(answer);
    }
    let (key, phone, otp) = path.into_inner();
    if !key_ok(&state, &key) {
        return error("Invalid API Key");
    }
    match state.pending_reference(NAME, &phone) {
        Some(session) => verify_answer(state.check_code(NAME, &session, &otp)),
        None => error("OTP Expired"),
    }
}

async fn send_template(state: web::Data<SimState>, path: web::Path<String>, body: web::Bytes) -> HttpResponse {
    let admitted = match admit(&state, NAME).await {
        Ok(a) => a,
        Err(answer) => return fault_response(answer),
    };
    if !key_ok(&state, &path) {
        return error("Invalid API Key");
    }
    let form = common::form(&body);
    let Some(to) = common::field(&form, "To").and_then(common::indian_or_e164) else {
        return error("Invalid Phone Number");
    };
    let Some(template) = common::field(&form, "TemplateName").filter(|t| state.knows_template(NAME, t)) else {
        return error("Template Name Not Found");
    };
    if common::field(&form, "From").is_none() {
        return error("Sender ID Not Approved");
    }
    let vars: Vec<String> = (1..).map_while(|i| form.get(&format!("VAR{i}")).cloned()).collect();
    let id = common::uuid();
    if admitted.deliver {
        let mut message = SimMessage::new(NAME, &to, &id);
        message.code = common::code_in_vars(&vars);
        message.template = Some(template.to_string());
        message.vars = vars;
        state.record(message);
    }
    success(&id)
}
