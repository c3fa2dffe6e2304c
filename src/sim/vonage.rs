//! Fake Vonage SMS API (`POST /sms/json`): credentials in the form, always HTTP 200 with a
//! `messages` array whose `status` says what happened; long texts come back as several parts.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::common::{self, admit, FaultAnswer};
use super::state::{SimMessage, SimState};

const NAME: &str = "vonage";
/// Longest text accepted, in characters.
const MAX_TEXT_CHARS: usize = 3200;

const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// Characters that take two GSM-7 septets (escape + char).
const GSM_EXTENDED: &str = "^{}\\[~]|€\u{c}";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/sms/json", web::post().to(send));
}

/// The message text Vonage gives a status.
fn error_text(status: &str) -> &'static str {
    match status {
        "1" => "Throughput Rate Exceeded - please wait [ 1000 ] and retry",
        "2" => "Missing params",
        "3" => "Invalid params",
        "4" => "Bad Credentials",
        "5" => "Internal Error",
        "6" => "Invalid Message",
        "7" => "Number barred",
        "8" => "Partner account barred",
        "9" => "Partner quota violation",
        "10" => "Too many existing binds",
        "11" => "Account not enabled for HTTP",
        "12" => "Message too long",
        "14" => "Invalid signature",
        "15" => "Invalid sender address",
        "29" => "Non-Whitelisted Destination",
        _ => "Error",
    }
}

fn error_body(status: &str, text: &str) -> serde_json::Value {
    json!({ "message-count": "1", "messages": [{ "status": status, "error-text": text }] })
}

/// Vonage reports errors inside an HTTP 200.
fn error(status: &str, text: &str) -> HttpResponse {
    HttpResponse::Ok().json(error_body(status, text))
}

pub(super) fn fault_response(answer: FaultAnswer) -> HttpResponse {
    match answer {
        FaultAnswer::Status(http) => {
            let status = match http {
                401 | 403 => "4",
                429 => "1",
                _ => "5",
            };
            common::json(http, error_body(status, common::reason(http)))
        }
        FaultAnswer::Error(status) => error(&status, error_text(&status)),
        FaultAnswer::Throttle(secs) => common::throttled(secs, error_body("1", error_text("1"))),
    }
}

/// GSM-7 length in septets, or `None` when the text needs UCS-2.
fn gsm_len(text: &str) -> Option<usize> {
    text.chars().try_fold(0, |n, c| {
        if GSM_BASIC.contains(c) {
            Some(n + 1)
        } else if GSM_EXTENDED.contains(c) {
            Some(n + 2)
        } else {
            None
        }
    })
}

/// How many SMS parts `text` takes: 160 GSM-7 (153 per part when split), 70 UCS-2 (67).
pub fn parts(text: &str, unicode: bool) -> usize {
    let (len, single, per_part) = match gsm_len(text).filter(|_| !unicode) {
        Some(septets) => (septets, 160, 153),
        None => (text.encode_utf16().count(), 70, 67),
    };
    if len <= single {
        1
    } else {
        len.div_ceil(per_part)
    }
}

async fn send(state: web::Data<SimState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let admitted = match admit(&state, NAME).await {
        Ok(a) => a,
        Err(answer) => return fault_response(answer),
    };
    // Vonage reads parameters from the query string as well as the form.
    let mut params = common::form(req.query_string().as_bytes());
    params.extend(common::form(&body));
    let (Some(key), Some(secret)) = (common::field(&params, "api_key"), common::field(&params, "api_secret")) else {
        return error("2", "Missing api_key or api_secret");
    };
    let c = &state.credentials;
    if key != c.api_key || secret != c.api_secret {
        return error("4", "Bad Credentials");
    }
    let Some(from) = common::field(&params, "from") else {
        return error("2", "Missing from param");
    };
    let Some(raw_to) = common::field(&params, "to") else {
        return error("2", "Missing to param");
    };
    let Some(to) = common::e164(raw_to) else {
        return error("3", "Invalid to param");
    };
    let Some(text) = params.get("text").filter(|t| !t.is_empty()) else {
        return error("2", "Missing text param");
    };
    if text.chars().count() > MAX_TEXT_CHARS {
        return error("12", "Message too long");
    }
    let unicode = common::field(&params, "type") == Some("unicode");
    let ids: Vec<String> = (0..parts(text, unicode)).map(|_| common::uuid()).collect();
    if admitted.deliver {
        let mut message = SimMessage::new(NAME, &to, &ids[0]);
        message.text = Some(text.clone());
        message.code = common::code_in(text);
        state.record(message);
    }
    let digits = to.trim_start_matches('+');
    let messages: Vec<_> = ids
        .iter()
        .map(|id| {
            json!({
                "to": digits,
                "message-id": id,
                "status": "0",
                "remaining-balance": "10.00000000",
                "message-price": "0.03330000",
                "network": "40410",
            })
        })
        .collect();
    tracing::debug!(from, parts = messages.len(), "sim vonage: accepted");
    HttpResponse::Ok().json(json!({
        "message-count": messages.len().to_string(),
        "messages": messages,
    }))
}

#[cfg(test)]
mod tests {
    use super::parts;

    #[test]
    fn texts_split_into_parts_like_vonage() {
        assert_eq!(parts(&"a".repeat(160), false), 1);
        assert_eq!(parts(&"a".repeat(161), false), 2);
        assert_eq!(parts(&"a".repeat(306), false), 2);
        assert_eq!(parts(&"a".repeat(307), false), 3);
        assert_eq!(parts(&"€".repeat(80), false), 1);
        assert_eq!(parts(&"€".repeat(81), false), 2);
        assert_eq!(parts(&"क".repeat(70), false), 1);
        assert_eq!(parts(&"क".repeat(71), false), 2);
        assert_eq!(parts(&"a".repeat(71), true), 2);
    }
}
