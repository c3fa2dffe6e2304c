//! Fake Fast2SMS (`POST /dev/bulkV2`): `authorization` header, JSON body with route `otp`, `dlt`
//! or `q`, national (10-digit Indian) numbers; errors as `{"return":false,"status_code",…}`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::common::{self, admit, FaultAnswer};
use super::state::{SimMessage, SimState};

const NAME: &str = "fast2sms";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/dev/bulkV2", web::post().to(send));
}

fn describe(code: u32) -> &'static str {
    match code {
        406 => "Invalid Numbers",
        411 => "Invalid Numbers",
        412 => "Invalid Authentication, Check Authorization Key",
        413 => "Invalid Message ID",
        416 => "Invalid Sender ID",
        995 => "Spamming detected",
        996 => "Low Balance",
        997 => "Low Balance",
        999 => "Invalid Numbers",
        _ => "Error",
    }
}

fn body(code: u32, message: &str) -> serde_json::Value {
    json!({ "return": false, "status_code": code, "message": message })
}

/// Fast2SMS answers errors with a 4xx status and the code in `status_code`.
fn error(http: u16, code: u32) -> HttpResponse {
    common::json(http, body(code, describe(code)))
}

pub(super) fn fault_response(answer: FaultAnswer) -> HttpResponse {
    match answer {
        FaultAnswer::Status(status) => common::json(status, body(u32::from(status), common::reason(status))),
        FaultAnswer::Error(code) => match code.parse::<u32>() {
            Ok(number) => error(400, number),
            Err(_) => common::json(400, body(0, &code)),
        },
        FaultAnswer::Throttle(secs) => common::throttled(secs, body(429, "Too Many Requests")),
    }
}

#[derive(Deserialize)]
struct SendRequest {
    route: Option<String>,
    numbers: Option<String>,
    message: Option<String>,
    variables_values: Option<String>,
    sender_id: Option<String>,
}

/// A 10-digit Indian mobile number as E.164.
fn national(number: &str) -> Option<String> {
    let n = number.trim();
    let ok = n.len() == 10 && n.bytes().all(|b| b.is_ascii_digit()) && matches!(n.as_bytes()[0], b'6'..=b'9');
    ok.then(|| format!("+91{n}"))
}

async fn send(state: web::Data<SimState>, req: HttpRequest, raw: web::Bytes) -> HttpResponse {
    let admitted = match admit(&state, NAME).await {
        Ok(a) => a,
        Err(answer) => return fault_response(answer),
    };
    if common::header(&req, "authorization") != Some(state.credentials.api_key.as_str()) {
        return error(401, 412);
    }
    let Ok(request) = serde_json::from_slice::<SendRequest>(&raw) else {
        return common::json(400, body(400, "Invalid JSON body"));
    };
    let text = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
    let mut recipients = Vec::new();
    for number in request.numbers.as_deref().unwrap_or("").split(',') {
        let Some(to) = national(number) else {
            return error(400, 406);
        };
        recipients.push(to);
    }
    let mut template = SimMessage::new(NAME, "", "");
    match request.route.as_deref() {
        Some("otp") => {
            let Some(code) = text(&request.variables_values).filter(|c| common::is_code(c)) else {
                return common::json(400, body(400, "Invalid OTP value in variables_values"));
            };
            template.code = Some(code);
        }
        Some("dlt") => {
            if text(&request.sender_id).is_none() {
                return error(400, 416);
            }
            let Some(id) = text(&request.message).filter(|id| state.knows_template(NAME, id)) else {
                return error(400, 413);
            };
            let vars: Vec<String> = request
                .variables_values
                .as_deref()
                .unwrap_or("")
                .split('|')
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .collect();
            template.code = common::code_in_vars(&vars);
            template.template = Some(id);
            template.vars = vars;
        }
        Some("q") => {
            let Some(message) = text(&request.message) else {
                return common::json(400, body(400, "Message text is required"));
            };
            template.code = common::code_in(&message);
            template.text = Some(message);
        }
        _ => return common::json(400, body(400, "Invalid Route")),
    }
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    for to in recipients.into_iter().filter(|_| admitted.deliver) {
        let mut message = template.clone();
        message.to = to;
        message.id = request_id.clone();
        state.record(message);
    }
    HttpResponse::Ok().json(json!({
        "return": true,
        "request_id": request_id,
        "message": ["SMS sent successfully."],
    }))
}
