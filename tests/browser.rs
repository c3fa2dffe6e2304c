//! The settings page in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`, see `scripts/ensure-chromium`) driven over WebDriver, against the real app
//! on a fresh PostgreSQL schema and the provider simulator. Screenshots land in
//! `target/screenshots/` for a person to look at.

/// The API tests' helpers (`spawn_app`, the per-test schema), shared rather than copied; this
/// test uses a few of them.
#[path = "api"]
#[allow(dead_code, unused_imports, unused_macros)]
mod support {
    pub mod db;
    pub mod helpers;
}
use support::{db, helpers};

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use helpers::{spawn_app, spawn_tuned, Backend, TestApp, ADMIN_TOKEN};
use smsgate::config::Role;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Long enough for a cold browser on a busy two-core machine; polls end as soon as they can.
const PATIENCE: Duration = Duration::from_secs(20);

/// chromedriver on a free port, killed with the test.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Self {
        assert!(
            std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
            "{CHROMIUM} and {CHROMEDRIVER} are missing: run scripts/ensure-chromium"
        );
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let ready = helpers::eventually(PATIENCE, || async {
            http.get(format!("{url}/status"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        assert!(ready, "chromedriver did not answer on {url}");
        Self { child, url }
    }

    async fn browser(&self) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                // Root in a container: no sandbox; /dev/shm is small there.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "--lang=en-US", "--hide-scrollbars"],
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session starts")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `probe` until it yields a value or `PATIENCE` runs out, then fails naming `what` and
/// the last thing seen.
async fn until<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, String>>,
{
    let deadline = Instant::now() + PATIENCE;
    let mut last = String::new();
    loop {
        match probe().await {
            Ok(Some(v)) => return v,
            Ok(None) => {}
            Err(e) => last = e,
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what} (last: {last})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A probe's answer: `value` when `done`, else what was seen, for the failure message.
fn seen<T>(done: bool, value: T, last: String) -> Result<Option<T>, String> {
    if done {
        Ok(Some(value))
    } else {
        Err(last)
    }
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.expect("script runs")
}

async fn find(c: &Client, css: &str) -> Element {
    c.wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css}: {e}"))
}

/// Waits until the element's text contains `needle` and returns that text.
async fn text_with(c: &Client, css: &str, needle: &str) -> String {
    until(&format!("{css} to say {needle:?}"), || async {
        let el = c.find(Locator::Css(css)).await.map_err(|e| e.to_string())?;
        let text = el.text().await.map_err(|e| e.to_string())?;
        seen(text.contains(needle), text.clone(), text)
    })
    .await
}

/// The provider names in the order the page shows them.
async fn shown_order(c: &Client) -> Vec<String> {
    let v = js(
        c,
        "return [...document.querySelectorAll('#provider-list li')].map(li => li.dataset.name)",
    )
    .await;
    serde_json::from_value(v).unwrap()
}

async fn order_becomes(c: &Client, want: &[&str]) {
    until(&format!("the order {want:?}"), || async {
        let got = shown_order(c).await;
        seen(got == want, (), format!("{got:?}"))
    })
    .await
}

/// Saves the whole page (the window made as tall as the document) under `target/screenshots/`.
async fn screenshot(c: &Client, name: &str, width: u32) {
    // The window's own frame takes part of its height: add it so the whole page fits.
    let height = js(
        c,
        "return document.documentElement.scrollHeight + Math.max(0, window.outerHeight - window.innerHeight)",
    )
    .await
    .as_u64()
    .unwrap_or(900);
    c.set_window_size(width, height.clamp(600, 4000) as u32).await.unwrap();
    js(c, "window.scrollTo(0, 0); return null").await;
    let png = c.screenshot().await.expect("a screenshot");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// Whether the app has `method path` at all (an unknown route is the API's 404 "no such route").
async fn has_route(app: &TestApp, method: reqwest::Method, path: &str) -> bool {
    let reply = app.request(method, path, Some(ADMIN_TOKEN), Some("{}".into()), &[]).await;
    let missing = reply.body["message"] == "no such route" || reply.body["error"] == "method_not_allowed";
    if missing {
        eprintln!("NOT COVERED: {path} is not served by this build; the page's error state is checked instead");
    }
    !missing
}

/// The code the simulator delivered to `phone`, read from its inbox API.
async fn delivered_code(app: &TestApp, phone: &str) -> String {
    let inbox = format!("{}/_sim/messages?to={}", app.sim.control_url(), urlencode(phone));
    until("the simulator to receive the code", || async {
        let list: Value = reqwest::get(&inbox)
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        Ok(list
            .as_array()
            .and_then(|m| m.last())
            .and_then(|m| m["code"].as_str())
            .map(str::to_string))
    })
    .await
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B")
}

async fn sign_in(c: &Client, app: &TestApp) {
    sign_in_as(c, app, ADMIN_TOKEN).await
}

async fn sign_in_as(c: &Client, app: &TestApp, token: &str) {
    c.goto(&format!("{}/admin", app.base)).await.unwrap();
    find(c, "#token").await.send_keys(token).await.unwrap();
    find(c, "#signin-btn").await.click().await.unwrap();
    until("the providers to show", || async {
        let n = js(c, "return document.querySelectorAll('#provider-list li').length").await;
        Ok((n.as_u64() > Some(0)).then_some(()))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_reorders_providers_tests_one_and_sees_the_log_in_a_real_browser() {
    let app = spawn_app(Backend::Postgres).await;
    let driver = Driver::start().await;
    let c = driver.browser().await;

    // Sign in: the token goes to sessionStorage, never into the URL.
    sign_in(&c, &app).await;
    assert!(!c.current_url().await.unwrap().as_str().contains(ADMIN_TOKEN));
    let stored = js(&c, "return sessionStorage.getItem('smsgate.admin.token')").await;
    assert_eq!(stored, json!(ADMIN_TOKEN));
    order_becomes(&c, &["2factor", "twilio"]).await;
    screenshot(&c, "01-signed-in", 1280).await;

    // Reorder from the keyboard: Enter on "Move twilio up" (a real button), focus stays on the
    // moved row; then save in one request; the new order survives a reload.
    find(&c, "button[aria-label='Move twilio up']")
        .await
        .send_keys(&Key::Enter.to_string())
        .await
        .unwrap();
    order_becomes(&c, &["twilio", "2factor"]).await;
    let focused = js(&c, "return document.activeElement.getAttribute('aria-label')").await;
    assert_eq!(focused, json!("Move twilio down"), "focus follows the moved provider");
    text_with(&c, "#order-msg", "Unsaved changes").await;
    find(&c, "#order-save").await.click().await.unwrap();
    if has_route(&app, reqwest::Method::PUT, "/v1/admin/providers/order").await {
        text_with(&c, "#order-msg", "Saved").await;
        c.refresh().await.unwrap();
        find(&c, "#provider-list li").await;
        order_becomes(&c, &["twilio", "2factor"]).await;
        let api = app.get("/v1/admin/providers", Some(ADMIN_TOKEN)).await;
        let names: Vec<&str> = api.body["providers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["twilio", "2factor"], "{}", api.body);

        // Switching every provider off is refused by the gateway, and the page says so plainly
        // and keeps what is live; Discard puts the switches back.
        for name in ["twilio", "2factor"] {
            find(&c, &format!("[data-key='en-{name}']")).await.click().await.unwrap();
        }
        text_with(&c, "#order-msg", "At least one provider must stay enabled").await;
        find(&c, "#order-save").await.click().await.unwrap();
        text_with(&c, "#order-msg", "Save failed").await;
        screenshot(&c, "02a-save-refused", 1280).await;
        let api = app.get("/v1/admin/providers", Some(ADMIN_TOKEN)).await;
        assert!(
            api.body["providers"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["enabled"] == json!(true)),
            "{}",
            api.body
        );
        find(&c, "#order-discard").await.click().await.unwrap();
        until("the switches back on", || async {
            let on = js(
                &c,
                "return [...document.querySelectorAll('#provider-list [role=switch]')].every(s => s.checked)",
            )
            .await;
            seen(on == json!(true), (), format!("{on}"))
        })
        .await;
    } else {
        // The page says the save failed and keeps the change for another try.
        text_with(&c, "#order-msg", "Save failed").await;
        assert_eq!(shown_order(&c).await, ["twilio", "2factor"]);
    }
    screenshot(&c, "02-reordered", 1280).await;

    // The provider form: the sender ID 2Factor fixes is read-only, the key is masked with a
    // Replace button, and a bad base URL is refused next to its field.
    find(&c, "[data-key='edit-2factor']").await.click().await.unwrap();
    let sender = find(&c, "#cfg-sender_id").await;
    assert_eq!(sender.prop("readOnly").await.unwrap().as_deref(), Some("true"));
    let masked_key = text_with(&c, "#editor-fields .masked", "••••").await;
    assert!(masked_key.chars().count() <= 8, "only the last 4 characters show: {masked_key}");
    find(&c, "#editor-fields .secret button").await;
    if has_route(&app, reqwest::Method::PATCH, "/v1/admin/providers/2factor").await {
        let url = find(&c, "#cfg-base_url").await;
        url.clear().await.unwrap();
        url.send_keys("not a url").await.unwrap();
        find(&c, "#editor-save").await.click().await.unwrap();
        // Under its field, without the list index the check names it by.
        let shown = text_with(&c, "#cfg-base_url-err", "`not a url` is not an http(s) URL").await;
        assert!(!shown.contains("providers["), "{shown}");
        assert_eq!(url.attr("aria-invalid").await.unwrap().as_deref(), Some("true"));
        text_with(&c, "#editor-msg", "Save failed").await;
        screenshot(&c, "02b-field-error", 1280).await;
        // A good change saves and lands in the audit trail.
        url.clear().await.unwrap();
        url.send_keys(&app.sim.url("2factor")).await.unwrap();
        let template = find(&c, "#cfg-template").await;
        template.clear().await.unwrap();
        template.send_keys("SMSTemplate2").await.unwrap();
        find(&c, "#editor-save").await.click().await.unwrap();
        text_with(&c, "#editor-msg", "Saved").await;
        let api = app.get("/v1/admin/providers", Some(ADMIN_TOKEN)).await;
        let two = api.body["providers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "2factor")
            .unwrap()
            .clone();
        assert_eq!(two["config"]["template"], json!("SMSTemplate2"), "{two}");
        text_with(&c, "#audit-list", "2factor").await;
    }
    find(&c, "#editor-close").await.click().await.unwrap();

    // Test sender: Send OTP through twilio alone, read the code from the simulator, verify it.
    let phone = helpers::phone(4242);
    find(&c, "#test-provider").await.select_by_value("twilio").await.unwrap();
    find(&c, "#test-phone").await.send_keys(&phone).await.unwrap();
    find(&c, "#test-send").await.click().await.unwrap();
    let code_input = find(&c, "#test-code").await;
    assert_eq!(code_input.attr("inputmode").await.unwrap().as_deref(), Some("numeric"));
    assert_eq!(code_input.attr("autocomplete").await.unwrap().as_deref(), Some("one-time-code"));
    if has_route(&app, reqwest::Method::POST, "/v1/admin/providers/twilio/test").await {
        text_with(&c, "#test-send-result", "SENT").await;
        text_with(&c, "#test-send-result", "Raw provider answer").await;
        let code = delivered_code(&app, &phone).await;
        find(&c, "#test-code").await.send_keys(&code).await.unwrap();
        find(&c, "#test-verify").await.click().await.unwrap();
        text_with(&c, "#test-verify-result", "VERIFIED").await;
    } else {
        text_with(&c, "#test-send-result", "Send failed").await;
    }

    // The log row of that send appears (the page refreshes logs after a test send).
    if has_route(&app, reqwest::Method::GET, "/v1/admin/logs?limit=1").await {
        let masked = smsgate::phone::Phone::parse(&phone, "91").unwrap().masked();
        until("the test send's log row", || async {
            let rows = js(&c, "return [...document.querySelectorAll('#log-rows tr')].map(r => r.textContent)").await;
            let rows: Vec<String> = serde_json::from_value(rows).unwrap();
            seen(
                rows.iter().any(|r| r.contains("twilio") && r.contains(&masked)),
                (),
                format!("{rows:?}"),
            )
        })
        .await;
    } else {
        text_with(&c, "#logs-state", "Could not load logs").await;
    }
    screenshot(&c, "03-tested", 1280).await;

    // The same page on a 360 px phone: nothing wider than the screen.
    c.set_window_size(360, 800).await.unwrap();
    c.refresh().await.unwrap();
    find(&c, "#provider-list li").await;
    let width = js(&c, "return [window.innerWidth, document.documentElement.scrollWidth]").await;
    assert_eq!(width[0], json!(360), "the viewport is 360 px wide");
    assert!(width[1].as_u64().unwrap() <= 360, "the page scrolls sideways at 360 px: {width}");
    screenshot(&c, "04-phone-360", 360).await;
    let width = js(&c, "return document.documentElement.scrollWidth").await;
    assert!(width.as_u64().unwrap() <= 360, "the page scrolls sideways at 360 px: {width}");

    c.close().await.unwrap();
}

/// An admin whose client entry has a phone passes an OTP to it before the page shows logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_wait_for_an_otp_to_the_admins_own_phone_when_their_entry_has_one() {
    const ONCALL_TOKEN: &str = "test-oncall-admin-token";
    const ONCALL_PHONE: &str = "+919876509999";
    let app = spawn_tuned(Backend::Postgres, |s| {
        let mut oncall = helpers::client("oncall", ONCALL_TOKEN, &[Role::Admin]);
        oncall.phone = Some(ONCALL_PHONE.into());
        s.clients.push(oncall);
    })
    .await;
    let driver = Driver::start().await;
    let c = driver.browser().await;

    sign_in_as(&c, &app, ONCALL_TOKEN).await;
    let gate = find(&c, "#mfa-send").await;
    assert!(gate.is_displayed().await.unwrap(), "the MFA step shows");
    assert!(!find(&c, "#logs-body").await.is_displayed().await.unwrap(), "no logs before MFA");

    // A wrong code is refused next to the code field; the right one opens the logs.
    gate.click().await.unwrap();
    let code = delivered_code(&app, ONCALL_PHONE).await;
    let wrong = if code.starts_with('1') {
        code.replacen('1', "2", 1)
    } else {
        format!("1{}", &code[1..])
    };
    let input = find(&c, "#mfa-code").await;
    assert_eq!(input.attr("autocomplete").await.unwrap().as_deref(), Some("one-time-code"));
    input.send_keys(&wrong).await.unwrap();
    find(&c, "#mfa-verify").await.click().await.unwrap();
    text_with(&c, "#mfa-err", "Not confirmed").await;
    screenshot(&c, "05-mfa-wrong-code", 1280).await;
    input.clear().await.unwrap();
    input.send_keys(&code).await.unwrap();
    find(&c, "#mfa-verify").await.click().await.unwrap();
    until("the logs after MFA", || async {
        let shown = js(
            &c,
            "return !document.getElementById('logs-body').hidden && document.getElementById('mfa').hidden",
        )
        .await;
        seen(shown == json!(true), (), format!("{shown}"))
    })
    .await;
    // The MFA send itself is in the logs, masked.
    let masked = smsgate::phone::Phone::parse(ONCALL_PHONE, "91").unwrap().masked();
    text_with(&c, "#log-rows", &masked).await;
    screenshot(&c, "06-mfa-passed", 1280).await;

    // The pass lasts for the tab: a reload shows the logs without asking again.
    c.refresh().await.unwrap();
    text_with(&c, "#log-rows", &masked).await;
    assert!(!find(&c, "#mfa").await.is_displayed().await.unwrap());
    c.close().await.unwrap();
}

/// The status chip the Campaigns tab shows for campaign `id`, or "" when it is not listed.
async fn shown_status(c: &Client, id: &str) -> String {
    let v = js(
        c,
        &format!("const s = document.querySelector('#campaign-list li[data-id=\"{id}\"] [data-status]'); return s ? s.textContent : ''"),
    )
    .await;
    v.as_str().unwrap_or_default().to_string()
}

/// A count the tab shows for campaign `id` (e.g. `sent`), or -1 when it is not shown.
async fn shown_count(c: &Client, id: &str, key: &str) -> i64 {
    let v = js(
        c,
        &format!(
            "const d = document.querySelector('#campaign-list li[data-id=\"{id}\"] [data-count=\"{key}\"]'); return d ? Number(d.textContent) : -1"
        ),
    )
    .await;
    v.as_i64().unwrap_or(-1)
}

async fn status_becomes(c: &Client, id: &str, want: &str) {
    until(&format!("campaign {id} to show {want}"), || async {
        let got = shown_status(c, id).await;
        seen(got == want, (), got)
    })
    .await
}

async fn api_status(app: &TestApp, id: &str) -> Value {
    let r = app.get(&format!("/v1/campaigns/{id}"), Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["status"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_watches_pauses_and_cancels_campaigns_and_removes_an_opt_out_in_a_real_browser() {
    let app = spawn_tuned(Backend::Postgres, |s| {
        s.campaigns.poll_ms = 20;
        s.campaigns.quiet_hours.clear();
    })
    .await;
    // Two numbers have opted out, and an app has a campaign scheduled an hour ahead.
    let optout = helpers::phone(9);
    let r = app.post("/v1/opt-outs", json!({"phone": optout})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let kept = helpers::phone(8);
    let r = app.post("/v1/opt-outs", json!({"phone": kept, "scope": "all"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let later = (app.clock.now() + chrono::Duration::hours(1)).to_rfc3339();
    let r = app
        .post(
            "/v1/campaigns",
            json!({"name": "spring sale", "type": "promotional", "text": "Sale!", "recipients": [helpers::phone(5), helpers::phone(6)], "schedule_at": later}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let second = r.body["id"].as_str().unwrap().to_string();

    let driver = Driver::start().await;
    let c = driver.browser().await;
    sign_in(&c, &app).await;

    // The tab opens from the keyboard: arrow right from the first tab selects Campaigns.
    find(&c, "#tab-settings").await.send_keys(&Key::Right.to_string()).await.unwrap();
    until("the Campaigns tab to show", || async {
        let v = js(
            &c,
            "return [document.getElementById('pane-campaigns').hidden, document.activeElement.id]",
        )
        .await;
        seen(v == json!([false, "tab-campaigns"]), (), format!("{v}"))
    })
    .await;
    assert!(
        !find(&c, "#provider-list").await.is_displayed().await.unwrap(),
        "one panel at a time"
    );
    status_becomes(&c, &second, "scheduled").await;

    // A promotional campaign to three numbers and an opted-out one, started while the tab is
    // open: the tab refreshes by itself (a scheduled campaign is live) and shows it first, its
    // counts reaching done: three sent, one skipped for the opt-out.
    app.advance(1);
    let mut recipients: Vec<String> = (1..4).map(helpers::phone).collect();
    recipients.push(optout.clone());
    let r = app
        .post(
            "/v1/campaigns",
            json!({"name": "winter notice", "type": "promotional", "text": "Hello from smsgate", "recipients": recipients}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let first = r.body["id"].as_str().unwrap().to_string();
    until("both campaigns, newest first", || async {
        let ids = js(
            &c,
            "return [...document.querySelectorAll('#campaign-list li')].map(li => li.dataset.id)",
        )
        .await;
        seen(ids == json!([first.clone(), second.clone()]), (), format!("{ids}"))
    })
    .await;
    status_becomes(&c, &first, "done").await;
    until("three sent, one skipped and none queued", || async {
        let got = (
            shown_count(&c, &first, "sent").await,
            shown_count(&c, &first, "skipped_opt_out").await,
            shown_count(&c, &first, "queued").await,
        );
        seen(got == (3, 1, 0), (), format!("{got:?}"))
    })
    .await;
    assert_eq!(shown_count(&c, &first, "failed").await, 0);
    let bar = js(
        &c,
        &format!("const p = document.querySelector('li[data-id=\"{first}\"] progress'); return [p.value, p.max]"),
    )
    .await;
    assert_eq!(bar, json!([4, 4]), "the bar is full");
    let done_buttons = js(
        &c,
        &format!("return document.querySelectorAll('li[data-id=\"{first}\"] button').length"),
    )
    .await;
    assert_eq!(done_buttons, json!(0), "a finished campaign offers no controls");

    // The scheduled one pauses from the keyboard; the gateway agrees.
    find(&c, &format!("[data-key='pause-{second}']"))
        .await
        .send_keys(&Key::Enter.to_string())
        .await
        .unwrap();
    status_becomes(&c, &second, "paused").await;
    text_with(&c, &format!("[data-msg='{second}']"), "Paused").await;
    assert_eq!(api_status(&app, &second).await, json!("paused"));
    find(&c, &format!("[data-key='resume-{second}']")).await;
    screenshot(&c, "07-campaigns", 1280).await;

    // Cancel asks first; "Keep it" leaves it alone.
    find(&c, &format!("[data-key='cancel-{second}']")).await.click().await.unwrap();
    find(&c, &format!("[data-key='keep-{second}']")).await.click().await.unwrap();
    find(&c, &format!("[data-key='cancel-{second}']")).await;
    assert_eq!(api_status(&app, &second).await, json!("paused"));

    // Cancelled elsewhere meanwhile: the page's Cancel is refused and says so next to the
    // campaign, then shows what the gateway has.
    let r = app.post(&format!("/v1/campaigns/{second}/cancel"), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    find(&c, &format!("[data-key='cancel-{second}']")).await.click().await.unwrap();
    find(&c, &format!("[data-key='confirm-{second}']")).await.click().await.unwrap();
    text_with(&c, &format!("[data-msg='{second}']"), "Cancel refused").await;
    status_becomes(&c, &second, "cancelled").await;
    screenshot(&c, "08-campaign-refused", 1280).await;

    // The opt-out is listed with its scope and source, and Remove takes it off the gateway.
    let row = text_with(&c, "#optout-rows", &optout).await;
    assert!(row.contains("promotional") && row.contains("api"), "{row}");
    find(&c, &format!("[data-key='rm-{optout}-promotional']"))
        .await
        .click()
        .await
        .unwrap();
    text_with(&c, "#optouts-msg", "Removed").await;
    until("the removed number off the list", || async {
        let rows = js(
            &c,
            "return [...document.querySelectorAll('#optout-rows tr')].map(r => r.dataset.phone)",
        )
        .await;
        seen(rows == json!([kept.clone()]), (), format!("{rows}"))
    })
    .await;
    let listed = app.get("/v1/opt-outs", Some(ADMIN_TOKEN)).await;
    let phones: Vec<&str> = listed.body["opt_outs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["phone"].as_str().unwrap())
        .collect();
    assert_eq!(phones, [kept.as_str()], "{}", listed.body);

    // The tab on a 360 px phone (it survives a reload through #campaigns): nothing sideways.
    c.set_window_size(360, 800).await.unwrap();
    c.refresh().await.unwrap();
    status_becomes(&c, &first, "done").await;
    let width = js(&c, "return [window.innerWidth, document.documentElement.scrollWidth]").await;
    assert_eq!(width[0], json!(360), "the viewport is 360 px wide");
    assert!(width[1].as_u64().unwrap() <= 360, "the tab scrolls sideways at 360 px: {width}");
    screenshot(&c, "09-campaigns-phone-360", 360).await;
    let width = js(&c, "return document.documentElement.scrollWidth").await;
    assert!(width.as_u64().unwrap() <= 360, "the tab scrolls sideways at 360 px: {width}");

    // With the last opt-out removed the list says it is empty rather than showing nothing.
    find(&c, &format!("[data-key='rm-{kept}-all']")).await.click().await.unwrap();
    text_with(&c, "#optouts-state", "No opt-outs").await;
    assert!(!find(&c, "#optout-table").await.is_displayed().await.unwrap());
    c.close().await.unwrap();
}
