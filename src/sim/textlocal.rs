//! Fake Textlocal (`POST /send/`): `apikey` in the form, errors as
//! `{"status":"failure","errors":[{"code","message"}]}` inside HTTP 200.

use actix_web::{web, HttpResponse};
use rand::Rng;
use serde_json::json;

use super::common::{self, admit, FaultAnswer};
use super::state::{SimMessage, SimState};

const NAME: &str = "textlocal";
/// Longest message accepted (six concatenated parts).
const MAX_MESSAGE_CHARS: usize = 918;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/send/", web::post().to(send)).route("/send", web::post().to(send));
}

fn describe(code: u32) -> &'static str {
    match code {
        3 => "Invalid login details",
        4 => "No recipients specified",
        5 => "No message content",
        6 => "Message too long",
        7 => "Insufficient credits",
        32 => "Invalid number format",
        43 => "Invalid sender name",
        44 => "No sender name specified",
        51 => "No valid numbers specified",
        80 => "Invalid template",
        192 => "You cannot send message at this time",
        _ => "Error",
    }
}

fn failure_body(code: u32, message: &str) -> serde_json::Value {
    json!({ "status": "failure", "errors": [{ "code": code, "message": message }] })
}

fn error(code: u32) -> HttpResponse {
    HttpResponse::Ok().json(failure_body(code, describe(code)))
}

pub(super) fn fault_response(answer: FaultAnswer) -> HttpResponse {
    match answer {
        FaultAnswer::Status(status) => common::json(status, failure_body(u32::from(status), common::reason(status))),
        FaultAnswer::Error(code) => match code.parse::<u32>() {
            Ok(number) => error(number),
            Err(_) => HttpResponse::Ok().json(failure_body(0, &code)),
        },
        FaultAnswer::Throttle(secs) => common::throttled(secs, failure_body(429, "Too many requests")),
    }
}

async fn send(state: web::Data<SimState>, body: web::Bytes) -> HttpResponse {
    let admitted = match admit(&state, NAME).await {
        Ok(a) => a,
        Err(answer) => return fault_response(answer),
    };
    let form = common::form(&body);
    if common::field(&form, "apikey") != Some(state.credentials.api_key.as_str()) {
        return error(3);
    }
    let Some(numbers) = common::field(&form, "numbers") else {
        return error(4);
    };
    let Some(text) = form.get("message").filter(|m| !m.trim().is_empty()) else {
        return error(5);
    };
    if text.chars().count() > MAX_MESSAGE_CHARS {
        return error(6);
    }
    let mut recipients = Vec::new();
    for number in numbers.split(',').map(str::trim) {
        if !number.trim_start_matches('+').bytes().all(|b| b.is_ascii_digit()) {
            return error(32);
        }
        let Some(to) = common::e164(number) else {
            return error(51);
        };
        recipients.push(to);
    }
    let sender = common::field(&form, "sender").unwrap_or("TXTLCL");
    let parts = super::vonage::parts(text, false);
    let mut messages = Vec::new();
    for to in recipients {
        let id = common::uuid();
        if admitted.deliver {
            let mut message = SimMessage::new(NAME, &to, &id);
            message.text = Some(text.clone());
            message.code = common::code_in(text);
            state.record(message);
        }
        let recipient: u64 = to.trim_start_matches('+').parse().unwrap_or(0);
        messages.push(json!({ "id": id, "recipient": recipient }));
    }
    let count = messages.len();
    HttpResponse::Ok().json(json!({
        "status": "success",
        "batch_id": rand::thread_rng().gen_range(100_000_000u32..999_999_999),
        "cost": count * parts,
        "num_messages": count,
        "balance": 1000,
        "message": { "num_parts": parts, "sender": sender, "content": text },
        "receipt_url": "",
        "custom": "",
        "messages": messages,
    }))
}
