//! `smsgate sim`: fake 2Factor, Twilio (Messages and Verify), Vonage, MSG91, Textlocal, Plivo and
//! Fast2SMS servers on local ports. Each speaks its provider's real wire format (paths,
//! authentication, bodies and error codes as the providers document them), remembers what it "delivered", and can be told to fail (see [`faults`]).
//! Tests, benchmarks and failover drills point providers' `base_url` at it. Never used by
//! production paths.

mod cli;
mod common;
mod control;
mod fast2sms;
pub mod faults;
mod msg91;
mod names;
mod plivo;
pub mod receipts;
mod state;
mod textlocal;
mod twilio;
mod two_factor;
mod vonage;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};

pub use cli::{parse_named, run_cli, SimArgs};
pub use faults::{Fault, FaultKind};
pub use receipts::ReceiptFault;
pub use state::{SimMessage, SimState};

pub use names::PROVIDERS;

/// The credentials every fake accepts; anything else gets the provider's auth error.
#[derive(Debug, Clone)]
pub struct SimCredentials {
    /// 2Factor key, Vonage `api_key`, MSG91 `authkey`, Textlocal `apikey`, Fast2SMS `authorization`.
    pub api_key: String,
    /// Vonage `api_secret`.
    pub api_secret: String,
    /// Twilio AccountSid.
    pub account_sid: String,
    /// Twilio and Plivo auth token.
    pub auth_token: String,
    /// Plivo AuthId.
    pub plivo_auth_id: String,
}

impl Default for SimCredentials {
    fn default() -> Self {
        Self {
            api_key: "sim-key".into(),
            api_secret: "sim-secret".into(),
            account_sid: format!("AC{}", "0".repeat(32)),
            auth_token: "sim-token".into(),
            plivo_auth_id: format!("MA{}", "0".repeat(18)),
        }
    }
}

/// Where and how to run the fakes.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub host: String,
    /// 0: every fake on a random port; else fakes on `base_port + 0..6`, control on `base_port + 7`.
    pub base_port: u16,
    /// Faults in force from the start, by provider name.
    pub faults: Vec<(String, Fault)>,
    pub credentials: SimCredentials,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            base_port: 0,
            faults: Vec::new(),
            credentials: SimCredentials::default(),
        }
    }
}

/// Running fakes; dropping the handle stops them too (without waiting).
pub struct SimHandle {
    state: Arc<SimState>,
    urls: Vec<String>,
    control: String,
    servers: Vec<ServerHandle>,
    tasks: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl SimHandle {
    /// The base URL of a fake (`http://127.0.0.1:PORT`); Twilio Verify shares Twilio's.
    /// Panics on a name that is not in [`PROVIDERS`] (nor `two_factor`).
    pub fn url(&self, provider: &str) -> String {
        let name = names::canonical(provider).unwrap_or_else(|| panic!("`{provider}` is not a sim provider ({PROVIDERS:?})"));
        let index = PROVIDERS.iter().position(|p| *p == name).unwrap_or(0);
        self.urls[index].clone()
    }

    /// Where `/_sim/*` is served on its own (every provider port answers it too).
    pub fn control_url(&self) -> String {
        self.control.clone()
    }

    /// In-process access to what the fakes remember.
    pub fn state(&self) -> &Arc<SimState> {
        &self.state
    }

    /// Stops every fake and waits until they are down.
    pub async fn stop(mut self) {
        for server in std::mem::take(&mut self.servers) {
            server.stop(false).await;
        }
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        for server in &self.servers {
            // The stop command is sent when `stop` is called; the future only waits for it.
            drop(server.stop(false));
        }
    }
}

/// Starts the fakes and the control API.
pub async fn start(opts: SimOptions) -> std::io::Result<SimHandle> {
    let state = Arc::new(SimState::new(opts.credentials));
    for (name, fault) in opts.faults {
        if names::canonical(&name).is_none() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("fault for `{name}`, which is not one of {PROVIDERS:?}"),
            ));
        }
        state.set_fault(&name, Some(fault));
    }
    let port = |offset: u16| -> std::io::Result<u16> {
        match opts.base_port {
            0 => Ok(0),
            base => base
                .checked_add(offset)
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "base port too high")),
        }
    };
    let mut handle = SimHandle {
        state: state.clone(),
        urls: Vec::new(),
        control: String::new(),
        servers: Vec::new(),
        tasks: Vec::new(),
    };
    for (offset, name) in (0u16..).zip(PROVIDERS) {
        let url = serve(&mut handle, &opts.host, port(offset)?, Some(name))?;
        handle.urls.push(url);
    }
    handle.control = serve(&mut handle, &opts.host, port(7)?, None)?;
    Ok(handle)
}

/// Binds one port and serves the control API plus `provider`'s fake on it.
fn serve(handle: &mut SimHandle, host: &str, port: u16, provider: Option<&'static str>) -> std::io::Result<String> {
    let listener = TcpListener::bind((host, port))?;
    let addr = listener.local_addr()?;
    let data = web::Data::from(handle.state.clone());
    let server = HttpServer::new(move || {
        let app = App::new().app_data(data.clone()).configure(control::routes);
        match provider {
            Some(name) => app
                .configure(routes_of(name))
                .default_service(web::to(move |state: web::Data<SimState>| async move {
                    // A wrong path or method still reached this fake: count it, answer its 404.
                    state.count_call(name);
                    errors_of(name)(common::FaultAnswer::Status(404))
                })),
            None => app,
        }
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    handle.servers.push(server.handle());
    handle.tasks.push(tokio::spawn(server));
    Ok(format!("http://{addr}"))
}

fn errors_of(provider: &str) -> fn(common::FaultAnswer) -> actix_web::HttpResponse {
    match provider {
        "2factor" => two_factor::fault_response,
        "twilio" => twilio::fault_response,
        "vonage" => vonage::fault_response,
        "msg91" => msg91::fault_response,
        "textlocal" => textlocal::fault_response,
        "plivo" => plivo::fault_response,
        _ => fast2sms::fault_response,
    }
}

fn routes_of(provider: &str) -> fn(&mut web::ServiceConfig) {
    match provider {
        "2factor" => two_factor::routes,
        "twilio" => twilio::routes,
        "vonage" => vonage::routes,
        "msg91" => msg91::routes,
        "textlocal" => textlocal::routes,
        "plivo" => plivo::routes,
        _ => fast2sms::routes,
    }
}
