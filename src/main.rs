//! The `smsgate` command: a thin CLI over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;
use smsgate::app::Application;
use smsgate::config::Settings;

#[derive(Parser)]
#[command(name = "smsgate", version, about = "Multi-provider SMS/OTP gateway with failover")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        #[arg(long, default_value = "providers.toml", env = "SMSGATE_CONFIG")]
        config: PathBuf,
        /// Address to listen on (overrides `server.listen`).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Apply database migrations (DATABASE_URL) and exit.
    Migrate {
        #[arg(long, default_value = "providers.toml", env = "SMSGATE_CONFIG")]
        config: PathBuf,
    },
    /// Serve fake provider endpoints (2Factor, Twilio, Vonage, MSG91, Textlocal, Plivo,
    /// Fast2SMS) with fault injection, for drills and tests. Never a production path.
    Sim(smsgate::sim::SimArgs),
    /// Validate the configuration and report each provider's state.
    CheckConfig {
        #[arg(long, default_value = "providers.toml", env = "SMSGATE_CONFIG")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SMSGATE_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match cli.command {
            Command::Serve { config, listen } => serve(config, listen).await,
            Command::Migrate { config } => migrate(config).await,
            Command::CheckConfig { config } => check_config(config),
            Command::Sim(args) => match smsgate::sim::run_cli(args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            },
        }
    })
}

fn load(path: &std::path::Path) -> Result<Settings, ExitCode> {
    Settings::load(path).map_err(|e| {
        eprintln!("error: configuration: {e}");
        ExitCode::from(2)
    })
}

async fn serve(config: PathBuf, listen: Option<String>) -> ExitCode {
    let mut settings = match load(&config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if let Some(addr) = listen {
        settings.server.listen = addr;
    }
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(token) = &app.generated_token {
        eprintln!(
            "\nNo [[clients]] are configured, so this run made one bearer token (roles send, admin).\n\
             It is shown only now and dies with this process:\n\n    {token}\n\n\
             For a lasting token add a [[clients]] entry with its SHA-256 to providers.toml.\n"
        );
    }
    tracing::info!(port = app.port(), "smsgate listening");
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(config: PathBuf) -> ExitCode {
    let settings = match load(&config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let Some(url) = settings.database_url.as_ref().map(|u| u.expose_secret().to_string()) else {
        eprintln!("error: DATABASE_URL is not set");
        return ExitCode::from(2);
    };
    let result = async {
        let store = smsgate::store::PostgresStore::connect(&url, 2, smsgate::metrics::Metrics::new())?;
        anyhow::Ok(smsgate::store::migrate::run(store.pool()).await?)
    }
    .await;
    match result {
        Ok(n) => {
            println!("applied {n} migration(s)");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: migrating: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(config: PathBuf) -> ExitCode {
    let settings = match load(&config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let env = |var: &str| std::env::var(var).ok();
    match smsgate::routing::Registry::build(&settings, &env, None) {
        Ok((registry, skipped)) => {
            println!("{}: valid", config.display());
            for slot in registry.slots() {
                println!("  ok       {} ({}, priority {})", slot.name(), slot.kind, slot.priority);
            }
            for s in &skipped {
                println!("  skipped  {}: {}", s.provider, s.reason);
            }
            if registry.console_only() {
                println!("  note     no provider has credentials: `serve` would use the console provider");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}: {e}", config.display());
            ExitCode::from(2)
        }
    }
}
