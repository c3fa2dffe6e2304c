//! Fake MSG91 v5: OTP send (code made by MSG91 unless `otp` is given), verify (once), retry, and
//! Flow templates; `authkey` header, `{"type":"success"|"error",…}` answers.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::common::{self, admit, FaultAnswer};
use super::state::{Check, SimMessage, SimState};

const NAME: &str = "msg91";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v5/otp", web::post().to(send_otp))
        .route("/api/v5/otp/verify", web::get().to(verify))
        .route("/api/v5/otp/retry", web::get().to(retry))
        .route("/api/v5/flow/", web::post().to(flow))
        .route("/api/v5/flow", web::post().to(flow));
}

fn success(fields: Value) -> HttpResponse {
    let mut body = json!({ "type": "success" });
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), fields) {
        body.extend(extra);
    }
    HttpResponse::Ok().json(body)
}

/// MSG91 answers request errors with HTTP 200 and `type: error`.
fn error(message: &str, code: &str) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "type": "error", "message": message, "code": code }))
}

pub(super) fn fault_response(answer: FaultAnswer) -> HttpResponse {
    match answer {
        FaultAnswer::Status(status) => common::json(
            status,
            json!({ "type": "error", "message": common::reason(status), "code": status.to_string() }),
        ),
        FaultAnswer::Error(code) if code.bytes().all(|b| b.is_ascii_digit()) => {
            let message = match code.as_str() {
                "201" => "AuthenticationFailure",
                "418" => "IP not whitelisted",
                _ => "Error",
            };
            error(message, &code)
        }
        FaultAnswer::Error(message) => HttpResponse::Ok().json(json!({ "type": "error", "message": message })),
        FaultAnswer::Throttle(secs) => common::throttled(secs, json!({ "type": "error", "message": "Too many requests", "code": "429" })),
    }
}

/// `None` when the `authkey` header (or query parameter) is right; else the answer to give.
fn refuse_unauthorised(state: &SimState, req: &HttpRequest) -> Option<HttpResponse> {
    let query = common::form(req.query_string().as_bytes());
    let key = common::header(req, "authkey").or_else(|| common::field(&query, "authkey"));
    (key != Some(state.credentials.api_key.as_str()))
        .then(|| common::json(401, json!({ "type": "error", "message": "AuthenticationFailure", "code": "201" })))
}

/// The `mobile` query parameter as E.164, and its digits (MSG91's reference for the code).
fn mobile(req: &HttpRequest) -> Option<(String, String)> {
    let query = common::form(req.query_string().as_bytes());
    let to = common::field(&query, "mobile").and_then(common::indian_or_e164)?;
    let digits = to.trim_start_matches('+').to_string();
    Some((to, digits))
}

async fn send_otp(state: web::Data<SimState>, req: HttpRequest) -> HttpResponse {
    let admitted = match admit(&state, NAME).await {
        Ok(a) => a,
        Err(answer) => return fault_response(answer),
    };
    if let Some(refusal) = refuse_unauthorised(&state, &req) {
        return refusal;
    }
    let query = common::form(req.query_string().as_bytes());
    let Some(template) = common::field(&query, "template_id").filter(|t| state.knows_template(NAME, t)) else {
        return error("Template not found", "400");
    };
    let Some((to, digits)) = mobile(&req) else {
        return error("Mobile no. invalid", "400");
    };
    let code = match common::field(&query, "otp") {
        Some(otp) if common::is_code(otp) => otp.to_string(),
        Some(_) => return error("OTP must be numeric with 4 to 10 digits", "400"),
        None => common::new_code(),
    };
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    state.hold_code(NAME, &digits, &to, &code);
    if admitted.deliver {
        let mut message = SimMessage::new(NAME, &to, &request_id);
        message.code = Some(code);
        message.template = Some(template.to_string());
        state.record(message);
    }
    success(json!({ "request_id": request_id }))
}

async fn verify(state: web::Data<SimState>, req: HttpRequest) -> HttpResponse {
    if let Err(answer) = admit(&state, NAME).await {
        return fault_response(answer);
    }
    if let Some(refusal) = refuse_unauthorised(&state, &req) {
        return refusal;
    }
    let Some((_, digits)) = mobile(&req) else {
        return error("Mobile no. invalid", "400");
    };
    let query = common::form(req.query_string().as_bytes());
    let otp = common::field(&query, "otp").unwrap_or_default();
    match state.check_code(NAME, &digits, otp) {
        Check::Matched => success(json!({ "message": "OTP verified success" })),
        Check::Mismatch => error("OTP not match", "703"),
        Check::AlreadyUsed => error("Mobile no. already verified", "703"),
        Check::Unknown => error("OTP expired", "703"),
    }
}

async fn retry(state: web::Data<SimState>, req: HttpRequest) -> HttpResponse {
    let admitted = match admit(&state, NAME).await {
        Ok(a) => a,
        Err(answer) => return fault_response(answer),
    };
    if let Some(refusal) = refuse_unauthorised(&state, &req) {
        return refusal;
    }
    let Some((to, digits)) = mobile(&req) else {
        return error("Mobile no. invalid", "400");
    };
    match state.held_code(NAME, &digits).filter(|h| !h.used) {
        Some(held) => {
            if admitted.deliver {
                let mut message = SimMessage::new(NAME, &to, &common::uuid());
                message.code = Some(held.code);
                state.record(message);
            }
            success(json!({ "message": "retry send successfully" }))
        }
        None => error("No OTP request found to retry", "400"),
    }
}

#[derive(Deserialize)]
struct FlowRequest {
    template_id: Option<String>,
    #[serde(default)]
    recipients: Vec<serde_json::Map<String, Value>>,
}

/// `var2` before `var10`: variables sorted by name, then by their numeric suffix.
fn var_order(name: &str) -> (String, u64) {
    let split = name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (word, number) = name.split_at(split);
    (word.to_string(), number.parse().unwrap_or(0))
}

async fn flow(state: web::Data<SimState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let admitted = match admit(&state, NAME).await {
        Ok(a) => a,
        Err(answer) => return fault_response(answer),
    };
    if let Some(refusal) = refuse_unauthorised(&state, &req) {
        return refusal;
    }
    let Ok(request) = serde_json::from_slice::<FlowRequest>(&body) else {
        return error("Invalid JSON body", "400");
    };
    let Some(template) = request
        .template_id
        .filter(|t| !t.trim().is_empty() && state.knows_template(NAME, t))
    else {
        return error("Template not found", "400");
    };
    let mut messages = Vec::new();
    for recipient in &request.recipients {
        let mobiles = recipient.get("mobiles").and_then(Value::as_str).unwrap_or("");
        let mut names: Vec<&String> = recipient.keys().filter(|k| *k != "mobiles").collect();
        names.sort_by_key(|k| var_order(k));
        let vars: Vec<String> = names
            .iter()
            .map(|k| match &recipient[k.as_str()] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        for number in mobiles.split(',') {
            let Some(to) = common::indian_or_e164(number) else {
                return error("Invalid mobile number", "400");
            };
            messages.push((to, vars.clone()));
        }
    }
    if messages.is_empty() {
        return error("Invalid mobile number", "400");
    }
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    for (to, vars) in messages.into_iter().filter(|_| admitted.deliver) {
        let mut message = SimMessage::new(NAME, &to, &request_id);
        message.code = common::code_in_vars(&vars);
        message.template = Some(template.clone());
        message.vars = vars;
        state.record(message);
    }
    success(json!({ "message": request_id }))
}
