//! Test-only: the requests the Twilio and Vonage adapters build, checked against the providers'
//! published API descriptions (vendored in `tests/fixtures/specs`): every form
//! field sent is a documented property of the operation's request body, and every required one is sent.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::testing::{self, CaptureServer, Captured};
use super::twilio::Twilio;
use super::vonage::Vonage;
use super::{OutboundSms, Provider};

const SPECS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/specs");
const FORM: &str = "application/x-www-form-urlencoded";

const SECRETS: &[(&str, &str)] = &[
    ("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef"),
    ("TWILIO_AUTH_TOKEN", "token-for-tests"),
    ("VONAGE_API_KEY", "abcd1234"),
    ("VONAGE_API_SECRET", "abcdef0123456789"),
];

fn twilio(settings: Value) -> Twilio {
    testing::build_with(&testing::json_config("twilio", "twilio", settings), SECRETS, Twilio::build).unwrap()
}

fn otp() -> OutboundSms {
    testing::otp("482913", "Your code is 482913")
}

fn read_spec(relative: &str) -> String {
    let path = format!("{SPECS}/{relative}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// Whether an OpenAPI path template (`/Accounts/{AccountSid}/Messages.json`) matches `path`.
fn template_matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter().zip(&p).all(|(t, p)| match t.split_once('{') {
            Some((prefix, rest)) => {
                let suffix = rest.rsplit_once('}').map_or("", |(_, s)| s);
                p.starts_with(prefix) && p.ends_with(suffix) && p.len() > prefix.len()
            }
            None => t == p,
        })
}

/// The request-body form schema of the one operation serving `request`, `$ref`s resolved.
fn form_schema<'a>(spec: &'a Value, request: &Captured) -> &'a Value {
    let path = request.path.as_str();
    let matches: Vec<_> = spec["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .filter(|(template, _)| template_matches(template, path))
        .collect();
    assert_eq!(matches.len(), 1, "operations for {path}: {matches:?}");
    let operation = &matches[0].1[request.method.to_ascii_lowercase()];
    assert!(operation.is_object(), "no {} on {path}", request.method);
    let mut schema = &operation["requestBody"]["content"][FORM]["schema"];
    while let Some(reference) = schema["$ref"].as_str() {
        let pointer = reference.strip_prefix('#').expect("local $ref");
        schema = spec.pointer(pointer).expect("resolvable $ref");
    }
    assert!(schema.is_object(), "no {FORM} body on {path}");
    schema
}

/// Asserts the form sent is a valid instance of `properties` / `required`.
fn assert_form_fits(request: &Captured, properties: &BTreeSet<String>, required: &[String]) {
    assert_eq!(request.header("content-type"), Some(FORM));
    let sent: BTreeSet<String> = request.form_pairs().into_iter().map(|(k, _)| k).collect();
    assert_eq!(sent.len(), request.form_pairs().len(), "a field sent twice");
    let undocumented: Vec<_> = sent.difference(properties).collect();
    assert!(undocumented.is_empty(), "not in the spec: {undocumented:?}");
    let missing: Vec<_> = required.iter().filter(|r| !sent.contains(*r)).collect();
    assert!(missing.is_empty(), "required but not sent: {missing:?}");
}

fn assert_fits_openapi_json(spec: &Value, request: &Captured) {
    let schema = form_schema(spec, request);
    let properties = schema["properties"].as_object().expect("properties").keys().cloned().collect();
    let required: Vec<String> = schema["required"]
        .as_array()
        .map(|r| r.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    assert_form_fits(request, &properties, &required);
}

async fn captured_twilio_send(settings: Value, message: OutboundSms, answer: &str) -> Captured {
    let mut server = CaptureServer::start(201, answer).await;
    let mut settings = settings;
    settings["base_url"] = json!(server.base_url);
    settings["verify_base_url"] = json!(server.base_url);
    twilio(settings).send(&message).await.unwrap();
    server.single()
}

#[tokio::test]
async fn twilio_messages_requests_fit_the_2010_04_01_api() {
    let spec: Value = serde_json::from_str(&read_spec("twilio/twilio_api_v2010.json")).unwrap();
    let created = r#"{"sid":"SM0123456789abcdef0123456789abcdef","status":"queued"}"#;
    for from in ["+15005550006", "MG0123456789abcdef0123456789abcdef"] {
        let settings = json!({"from": from});
        let text = testing::text("hi");
        let request = captured_twilio_send(settings.clone(), text, created).await;
        assert_eq!(request.method, "POST");
        assert_fits_openapi_json(&spec, &request);
        let request = captured_twilio_send(settings, otp(), created).await;
        assert_fits_openapi_json(&spec, &request);
    }
}

#[tokio::test]
async fn twilio_verify_requests_fit_the_verify_v2_api() {
    let spec: Value = serde_json::from_str(&read_spec("twilio/twilio_verify_v2.json")).unwrap();
    let settings = json!({
        "otp_mode": "verify",
        "verify_service_sid": "VA0123456789abcdef0123456789abcdef",
    });
    let started = r#"{"sid":"VE0123456789abcdef0123456789abcdef","status":"pending"}"#;
    let request = captured_twilio_send(settings.clone(), otp(), started).await;
    assert!(request.target().ends_with("/Verifications"), "{}", request.target());
    assert_fits_openapi_json(&spec, &request);

    let mut server = CaptureServer::start(200, r#"{"status":"approved","valid":true}"#).await;
    let mut settings = settings;
    settings["verify_base_url"] = json!(server.base_url);
    assert!(twilio(settings).verify("VE01", "482913").await.unwrap());
    let request = server.single();
    assert!(request.target().ends_with("/VerificationCheck"), "{}", request.target());
    assert_fits_openapi_json(&spec, &request);
}

/// `properties` keys and `required` items of one schema under `components.schemas` of a YAML
/// OpenAPI file. No YAML parser is a dependency, so this reads the block layout `sms.yml` uses:
/// the schema name at 4 spaces, `required:` / `properties:` at 6, their entries at 8.
fn yaml_schema_fields(yaml: &str, schema: &str) -> (BTreeSet<String>, Vec<String>) {
    let header = format!("    {schema}:");
    let start = yaml
        .lines()
        .position(|l| l == header)
        .unwrap_or_else(|| panic!("no schema {schema}"));
    let (mut properties, mut required) = (BTreeSet::new(), Vec::new());
    let mut section = "";
    for line in yaml.lines().skip(start + 1) {
        let indent = line.len() - line.trim_start().len();
        if line.trim().is_empty() {
            continue;
        }
        if indent <= 4 {
            break;
        }
        if indent == 6 {
            section = line.trim().trim_end_matches(':');
        } else if indent == 8 && section == "required" {
            required.push(line.trim().trim_start_matches("- ").to_string());
        } else if indent == 8 && section == "properties" {
            properties.insert(line.trim().trim_end_matches(':').to_string());
        }
    }
    (properties, required)
}

#[tokio::test]
async fn vonage_requests_fit_the_sms_api() {
    let yaml = read_spec("vonage/sms.yml");
    // The one operation: POST {server}/{format} with the server `.../sms` and format `json`.
    assert!(yaml.contains("  - url: https://rest.nexmo.com/sms\n"));
    assert!(yaml.contains("\n  /{format}:\n    post:\n"));
    assert!(yaml.contains(&format!(
        "          {FORM}:\n            schema:\n              $ref: \"#/components/schemas/NewMessage\""
    )));
    let (properties, required) = yaml_schema_fields(&yaml, "NewMessage");
    assert!(
        properties.contains("text") && required.contains(&"api_key".to_string()),
        "the line reader lost the schema: {properties:?} {required:?}"
    );

    for text in ["Your code is 482913", "आपका कोड 482913 है"] {
        let answer = r#"{"message-count":"1","messages":[{"message-id":"m1","status":"0"}]}"#;
        let mut server = CaptureServer::start(200, answer).await;
        let config = testing::json_config("vonage", "vonage", json!({"from": "SMSGATE", "base_url": server.base_url}));
        let vonage = testing::build_with(&config, SECRETS, Vonage::build).unwrap();
        vonage.send(&testing::text(text)).await.unwrap();
        let request = server.single();
        assert_eq!((request.method.as_str(), request.target().as_str()), ("POST", "/sms/json"));
        assert_form_fits(&request, &properties, &required);
        let to = request.form_pairs().into_iter().find(|(k, _)| k == "to").unwrap().1;
        assert!(
            (7..=15).contains(&to.len()) && to.bytes().all(|b| b.is_ascii_digit()),
            "`to` must match \\d{{7,15}}: {to}"
        );
    }
}
