//! Fake Twilio: Messages (`/2010-04-01/Accounts/{sid}/Messages.json`) and Verify
//! (`/v2/Services/{sid}/Verifications`, `/VerificationCheck`) on one port, basic auth
//! AccountSid:AuthToken, errors as `{"code","message","more_info","status"}`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::common::{self, admit, FaultAnswer};
use super::state::{Check, SimMessage, SimState};

const NAME: &str = "twilio";
/// Wrong guesses allowed on one verification before 60202.
const MAX_CHECKS: u32 = 5;
/// Longest body Twilio accepts.
const MAX_BODY_CHARS: usize = 1600;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/2010-04-01/Accounts/{sid}/Messages.json", web::post().to(send))
        .route("/v2/Services/{service}/Verifications", web::post().to(start_verification))
        .route("/v2/Services/{service}/VerificationCheck", web::post().to(check_verification));
}

/// Twilio's error body with the HTTP status it comes with.
fn error(status: u16, code: u32, message: &str) -> HttpResponse {
    common::json(status, error_body(status, code, message))
}

fn error_body(status: u16, code: u32, message: &str) -> serde_json::Value {
    json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    })
}

/// The HTTP status and message Twilio answers a known error code with.
fn describe(code: u32) -> (u16, &'static str) {
    match code {
        20003 => (401, "Authenticate"),
        20404 => (404, "The requested resource was not found"),
        20429 => (429, "Too Many Requests"),
        21211 => (400, "The 'To' number is not a valid phone number."),
        21408 => (400, "Permission to send an SMS has not been enabled for the region"),
        21610 => (400, "Attempt to send to unsubscribed recipient"),
        21612 => (400, "The 'To' phone number is not currently reachable via SMS"),
        21614 => (400, "'To' number is not a valid mobile number"),
        60202 => (429, "Max check attempts reached"),
        60203 => (429, "Max send attempts reached"),
        20500..=20599 => ((code - 20000) as u16, "Internal server error"),
        _ => (400, "Error"),
    }
}

pub(super) fn fault_response(answer: FaultAnswer) -> HttpResponse {
    match answer {
        FaultAnswer::Status(status) => {
            let code = if status == 401 { 20003 } else { 20000 + u32::from(status) };
            error(status, code, common::reason(status))
        }
        FaultAnswer::Error(code) => {
            let number = code.parse::<u32>().unwrap_or(0);
            let (status, message) = describe(number);
            error(status, number, message)
        }
        FaultAnswer::Throttle(secs) => common::throttled(secs, error_body(429, 20429, "Too Many Requests")),
    }
}

fn authorised(state: &SimState, req: &HttpRequest) -> bool {
    let c = &state.credentials;
    common::basic_auth(req).is_some_and(|(user, pass)| user == c.account_sid && pass == c.auth_token)
}

fn unauthorised() -> HttpResponse {
    error(401, 20003, "Authenticate")
}

fn rfc2822_now() -> String {
    chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

async fn send(state: web::Data<SimState>, req: HttpRequest, path: web::Path<String>, body: web::Bytes) -> HttpResponse {
    let admitted = match admit(&state, NAME).await {
        Ok(a) => a,
        Err(answer) => return fault_response(answer),
    };
    if !authorised(&state, &req) || *path != state.credentials.account_sid {
        return unauthorised();
    }
    let form = common::form(&body);
    let Some(raw_to) = common::field(&form, "To") else {
        return error(400, 21604, "A 'To' phone number is required.");
    };
    let Some(to) = raw_to.starts_with('+').then(|| common::e164(raw_to)).flatten() else {
        let message = format!("The 'To' number {raw_to} is not a valid phone number.");
        return error(400, 21211, &message);
    };
    let from = common::field(&form, "From");
    let service = common::field(&form, "MessagingServiceSid");
    if from.is_none() && service.is_none() {
        return error(400, 21603, "A 'From' phone number is required.");
    }
    let Some(text) = common::field(&form, "Body") else {
        return error(400, 21602, "Message body is required.");
    };
    if text.chars().count() > MAX_BODY_CHARS {
        return error(400, 21617, "The concatenated message body exceeds the 1600 character limit.");
    }
    let sid = common::sid("SM");
    if admitted.deliver {
        let mut message = SimMessage::new(NAME, &to, &sid);
        message.text = Some(text.to_string());
        message.code = common::code_in(text);
        state.record(message);
    }
    let now = rfc2822_now();
    let account = &state.credentials.account_sid;
    common::json(
        201,
        json!({
            "sid": sid,
            "account_sid": account,
            "to": to,
            "from": from,
            "messaging_service_sid": service,
            "body": text,
            "status": "queued",
            "num_segments": "1",
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "price": null,
            "error_code": null,
            "error_message": null,
            "date_created": now,
            "date_updated": now,
            "date_sent": null,
            "uri": format!("/2010-04-01/Accounts/{account}/Messages/{sid}.json"),
        }),
    )
}

fn verification_body(state: &SimState, service: &str, sid: &str, to: &str, status: &str) -> serde_json::Value {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json!({
        "sid": sid,
        "service_sid": service,
        "account_sid": state.credentials.account_sid,
        "to": to,
        "channel": "sms",
        "status": status,
        "valid": status == "approved",
        "amount": null,
        "payee": null,
        "date_created": now,
        "date_updated": now,
        "url": format!("https://verify.twilio.com/v2/Services/{service}/Verifications/{sid}"),
    })
}

async fn start_verification(state: web::Data<SimState>, req: HttpRequest, path: web::Path<String>, body: web::Bytes) -> HttpResponse {
    let admitted = match admit(&state, NAME).await {
        Ok(a) => a,
        Err(answer) => return fault_response(answer),
    };
    if !authorised(&state, &req) {
        return unauthorised();
    }
    let form = common::form(&body);
    let Some(to) = common::field(&form, "To").filter(|t| t.starts_with('+')).and_then(common::e164) else {
        return error(400, 60200, "Invalid parameter `To`");
    };
    if !matches!(common::field(&form, "Channel"), Some("sms")) {
        return error(400, 60200, "Invalid parameter `Channel`");
    }
    let sid = common::sid("VE");
    let code = common::new_code();
    state.hold_code(NAME, &sid, &to, &code);
    if admitted.deliver {
        let mut message = SimMessage::new(NAME, &to, &sid);
        message.text = Some(format!("Your verification code is: {code}"));
        message.code = Some(code);
        state.record(message);
    }
    common::json(201, verification_body(&state, &path, &sid, &to, "pending"))
}

async fn check_verification(state: web::Data<SimState>, req: HttpRequest, path: web::Path<String>, body: web::Bytes) -> HttpResponse {
    if let Err(answer) = admit(&state, NAME).await {
        return fault_response(answer);
    }
    if !authorised(&state, &req) {
        return unauthorised();
    }
    let form = common::form(&body);
    // Twilio finds the verification by its sid, or by the newest pending one for `To`.
    let sid = match (common::field(&form, "VerificationSid"), common::field(&form, "To")) {
        (Some(sid), _) => Some(sid.to_string()),
        (None, Some(to)) => state.pending_reference(NAME, to),
        (None, None) => return error(400, 60200, "Invalid parameter: VerificationSid or To is required"),
    };
    let Some(code) = common::field(&form, "Code") else {
        return error(400, 60200, "Invalid parameter: Code is required");
    };
    let not_found = || {
        let message = format!("The requested resource /Services/{path}/VerificationCheck was not found");
        error(404, 20404, &message)
    };
    let Some(sid) = sid else {
        return not_found();
    };
    let Some(held) = state.held_code(NAME, &sid) else {
        return not_found();
    };
    if held.misses >= MAX_CHECKS {
        return error(429, 60202, "Max check attempts reached");
    }
    let sid = sid.as_str();
    match state.check_code(NAME, sid, code) {
        Check::Matched => HttpResponse::Ok().json(verification_body(&state, &path, sid, &held.to, "approved")),
        Check::Mismatch => HttpResponse::Ok().json(verification_body(&state, &path, sid, &held.to, "pending")),
        Check::AlreadyUsed | Check::Unknown => not_found(),
    }
}
