//! Fake Plivo (`POST /v1/Account/{auth_id}/Message/`): basic auth AuthId:AuthToken, JSON body,
//! HTTP 202 with `message_uuid`, errors as `{"api_id","error"}` with a meaningful status.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::common::{self, admit, FaultAnswer};
use super::state::{SimMessage, SimState};

const NAME: &str = "plivo";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/Account/{auth_id}/Message/", web::post().to(send))
        .route("/v1/Account/{auth_id}/Message", web::post().to(send));
}

fn error(status: u16, message: &str) -> HttpResponse {
    common::json(status, json!({ "api_id": common::uuid(), "error": message }))
}

pub(super) fn fault_response(answer: FaultAnswer) -> HttpResponse {
    match answer {
        FaultAnswer::Status(status) => error(status, &common::reason(status).to_lowercase()),
        // Plivo's errors are HTTP statuses: `error:402` answers 402, any text answers 400.
        FaultAnswer::Error(code) => match code.parse::<u16>() {
            Ok(status @ 400..=599) => error(status, &common::reason(status).to_lowercase()),
            _ => error(400, &code),
        },
        FaultAnswer::Throttle(secs) => common::throttled(secs, json!({ "api_id": common::uuid(), "error": "too many requests" })),
    }
}

#[derive(Deserialize)]
struct SendRequest {
    src: Option<String>,
    dst: Option<String>,
    text: Option<String>,
}

async fn send(state: web::Data<SimState>, req: HttpRequest, path: web::Path<String>, body: web::Bytes) -> HttpResponse {
    let admitted = match admit(&state, NAME).await {
        Ok(a) => a,
        Err(answer) => return fault_response(answer),
    };
    let c = &state.credentials;
    let authorised = common::basic_auth(&req).is_some_and(|(id, token)| id == c.plivo_auth_id && token == c.auth_token);
    if !authorised || *path != c.plivo_auth_id {
        return error(401, "authentication credentials invalid");
    }
    let Ok(request) = serde_json::from_slice::<SendRequest>(&body) else {
        return error(400, "invalid json data");
    };
    let nonempty = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
    if nonempty(&request.src).is_none() {
        return error(400, "src parameter not present");
    };
    let Some(dst) = nonempty(&request.dst) else {
        return error(400, "dst parameter not present");
    };
    let Some(text) = nonempty(&request.text) else {
        return error(400, "text parameter not present");
    };
    // Several destinations are joined with `<`.
    let mut recipients = Vec::new();
    for number in dst.split('<') {
        match common::e164(number) {
            Some(to) => recipients.push(to),
            None => return error(400, &format!("invalid destination number {number}")),
        }
    }
    let ids: Vec<String> = recipients.iter().map(|_| common::uuid()).collect();
    for (to, id) in recipients.iter().zip(&ids).filter(|_| admitted.deliver) {
        let mut message = SimMessage::new(NAME, to, id);
        message.text = Some(text.clone());
        message.code = common::code_in(&text);
        state.record(message);
    }
    common::json(
        202,
        json!({ "api_id": common::uuid(), "message": "message(s) queued", "message_uuid": ids }),
    )
}
