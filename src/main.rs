//! The `smsgate` command: a thin CLI over the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;
use smsgate::app::Application;
use smsgate::config::{Role, Settings, Source};

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
        /// Configuration file; default `providers.toml`, and built-in defaults when it is absent.
        #[arg(long, env = "SMSGATE_CONFIG")]
        config: Option<PathBuf>,
        /// Address to listen on (overrides `server.listen`).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Apply database migrations (DATABASE_URL) and exit.
    Migrate {
        /// Configuration file; default `providers.toml`, and built-in defaults when it is absent.
        #[arg(long, env = "SMSGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Serve fake provider endpoints (2Factor, Twilio, Vonage, MSG91, Textlocal, Plivo,
    /// Fast2SMS) with fault injection, for drills and tests. Never a production path.
    Sim(smsgate::sim::SimArgs),
    /// Validate the configuration and report each provider's state.
    CheckConfig {
        /// Configuration file; default `providers.toml`, and built-in defaults when it is absent.
        #[arg(long, env = "SMSGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Manage API bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The provider registry in the database (DATABASE_URL).
    #[command(subcommand)]
    Providers(ProvidersCommand),
    /// Provider secrets sealed in the database.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Log retention (`[retention]`, PostgreSQL).
    #[command(subcommand)]
    Retention(RetentionCommand),
}

#[derive(Subcommand)]
enum ProvidersCommand {
    /// Apply a file's [[providers]] to the registry: same-named entries are replaced, others
    /// added. Running instances follow within a second.
    Import {
        /// Also remove providers the file does not list.
        #[arg(long)]
        replace: bool,
        /// The file; default `providers.toml` (or SMSGATE_CONFIG).
        #[arg(env = "SMSGATE_CONFIG")]
        file: Option<PathBuf>,
    },
    /// Print the registry as [[providers]] TOML, secrets omitted.
    Export {
        #[arg(long, env = "SMSGATE_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Re-seal every stored secret under SMSGATE_MASTER_KEY; the old key must be given in
    /// SMSGATE_MASTER_KEY_PREVIOUS.
    Rotate {
        #[arg(long, env = "SMSGATE_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// Create partitions ahead, archive and drop what is past retention, purge expired
    /// sessions and counters, once.
    Run {
        /// Print what it would do and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Configuration file; default `providers.toml`, and built-in defaults when it is absent.
        #[arg(long, env = "SMSGATE_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a new bearer token, print it once, and add a `[[clients]]` entry holding only its
    /// SHA-256 to the configuration. A second token for an existing name is a rotation: both
    /// stay valid until the old entry is removed.
    Create {
        /// Client name (letters, digits, `.`, `_`, `-`), shown in logs and metrics.
        #[arg(long)]
        name: String,
        /// Comma-separated roles: send, admin, super_admin.
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
        #[arg(long, default_value = "providers.toml", env = "SMSGATE_CONFIG")]
        config: PathBuf,
    },
}

/// `SMSGATE_LOG` with the database driver held at `info`: at `debug` tokio_postgres logs every
/// statement's parameters, phone numbers included. Naming `tokio_postgres` in `SMSGATE_LOG`
/// overrides this.
fn log_directives(spec: &str) -> String {
    if spec.contains("tokio_postgres") {
        spec.to_string()
    } else {
        format!("{spec},tokio_postgres=info")
    }
}

/// Measured through HTTP (wrk -t2 -c64, interleaved rounds, the same build with and without
/// it): the memory store +13% sends/s with a lower p99; PostgreSQL unchanged. Built without
/// transparent huge pages (`no_thp`): with them its arenas raised the peak RSS at 10,000 open
/// connections from 120 to 210 MB, and the memory store's p99.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let spec = std::env::var("SMSGATE_LOG").unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(log_directives(&spec)).unwrap_or_else(|_| "info".into()))
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
            Command::Token(TokenCommand::Create { name, roles, config }) => token_create(&name, &roles, &config),
            Command::Providers(ProvidersCommand::Import { replace, file }) => providers_import(file, replace).await,
            Command::Providers(ProvidersCommand::Export { config }) => providers_export(config).await,
            Command::Secrets(SecretsCommand::Rotate { config }) => secrets_rotate(config).await,
            Command::Retention(RetentionCommand::Run { dry_run, config }) => retention_run(config, dry_run).await,
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

fn load(path: Option<&Path>) -> Result<(Settings, Source), ExitCode> {
    Settings::load(path).map_err(|e| {
        eprintln!("error: configuration: {e}");
        ExitCode::from(2)
    })
}

/// What `source` says about where the settings came from, for a person.
fn describe(source: &Source) -> String {
    match source {
        Source::File(path) => path.display().to_string(),
        Source::Defaults { looked_for } => format!(
            "built-in defaults and SMSGATE_* environment ({} not found in {})",
            looked_for.display(),
            std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|_| ".".into())
        ),
    }
}

async fn serve(config: Option<PathBuf>, listen: Option<String>) -> ExitCode {
    let (mut settings, source) = match load(config.as_deref()) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    if let Source::Defaults { .. } = source {
        tracing::warn!("no configuration file: running on {}", describe(&source));
    }
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

async fn migrate(config: Option<PathBuf>) -> ExitCode {
    let (settings, _) = match load(config.as_deref()) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let Some(url) = settings.database_url.as_ref().map(|u| u.expose_secret().to_string()) else {
        eprintln!("error: DATABASE_URL is not set");
        return ExitCode::from(2);
    };
    let result = async { smsgate::store::PostgresStore::migrate(&url, &settings.database).await }.await;
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

async fn retention_run(config: Option<PathBuf>, dry_run: bool) -> ExitCode {
    use smsgate::store::retention;
    let (settings, _) = match load(config.as_deref()) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let Some(url) = settings.database_url.as_ref().map(|u| u.expose_secret().to_string()) else {
        eprintln!("error: DATABASE_URL is not set (retention works on PostgreSQL)");
        return ExitCode::from(2);
    };
    let result = async {
        smsgate::store::PostgresStore::migrate(&url, &settings.database).await?;
        let store = smsgate::store::PostgresStore::connect_with(&url, &settings.database, smsgate::metrics::Metrics::new())?;
        let now = chrono::Utc::now();
        if dry_run {
            let plan = retention::dry_run(store.pool(), &settings.retention, now).await?;
            print!("dry run, nothing changed:\n{plan}");
        } else {
            match retention::run(store.pool(), &settings.retention, now).await? {
                Some(done) => println!("{done:#?}"),
                None => println!("another instance is running retention; nothing done"),
            }
        }
        anyhow::Ok(())
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: retention: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(config: Option<PathBuf>) -> ExitCode {
    let (settings, source) = match load(config.as_deref()) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let env = |var: &str| std::env::var(var).ok();
    let shown = describe(&source);
    // A hook secret named but unset would stop `serve`: say so here.
    let hooks = match smsgate::hooks::Hooks::build(&settings.hooks, &env) {
        Ok(hooks) => hooks,
        Err(e) => {
            eprintln!("error: {shown}: {e}");
            return ExitCode::from(2);
        }
    };
    match smsgate::routing::Registry::build(&settings, &env) {
        Ok((registry, skipped)) => {
            println!("{shown}: valid");
            for slot in registry.slots() {
                println!("  ok       {} ({}, priority {})", slot.name(), slot.kind, registry.priority(slot));
            }
            for s in &skipped {
                println!("  skipped  {}: {}", s.provider, s.reason);
            }
            if registry.console_only() {
                println!("  note     no provider has credentials: `serve` would use the console provider");
            }
            for (hook, on) in [
                ("supabase", hooks.supabase.is_configured()),
                ("kratos", hooks.kratos.is_configured()),
                ("keycloak", hooks.keycloak.is_configured()),
            ] {
                if on {
                    println!("  hook     {hook}");
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {shown}: {e}");
            ExitCode::from(2)
        }
    }
}

async fn providers_import(file: Option<PathBuf>, replace: bool) -> ExitCode {
    let (settings, _) = match load(file.as_deref()) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    match smsgate::admin::commands::import(settings, replace).await {
        Ok(version) => {
            println!("imported; the registry is at version {version}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn providers_export(config: Option<PathBuf>) -> ExitCode {
    let (settings, _) = match load(config.as_deref()) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    match smsgate::admin::commands::export(settings).await {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn secrets_rotate(config: Option<PathBuf>) -> ExitCode {
    let (settings, _) = match load(config.as_deref()) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    match smsgate::admin::commands::rotate(settings).await {
        Ok(n) => {
            println!("re-sealed {n} provider(s) under the current master key");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn token_create(name: &str, roles: &[String], config: &std::path::Path) -> ExitCode {
    match add_client_token(name, roles, config) {
        Ok(token) => {
            println!("{token}");
            eprintln!(
                "\nThis is the new bearer token for client `{name}`. It is shown only now: {} stores only its SHA-256.\n\
                 Restart smsgate to load it; to retire an older token of `{name}`, delete its [[clients]] entry.",
                config.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Appends a `[[clients]]` entry for a fresh token to `config` (created when missing) after
/// checking that the result still loads; returns the token.
fn add_client_token(name: &str, roles: &[String], config: &std::path::Path) -> Result<String, String> {
    let valid_name = (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !valid_name {
        return Err(format!("--name `{name}` must be 1 to 64 letters, digits, `.`, `_` or `-`"));
    }
    let mut parsed = Vec::new();
    for name in roles.iter().map(|r| r.trim()).filter(|r| !r.is_empty()) {
        parsed.push(Role::parse(name).ok_or_else(|| format!("--roles: `{name}` is not one of {}", role_names()))?);
    }
    let mut roles = parsed;
    roles.sort_unstable();
    roles.dedup();
    if roles.is_empty() {
        return Err(format!("--roles must list at least one of {}", role_names()));
    }
    let existing = match std::fs::read_to_string(config) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("reading {}: {e}", config.display())),
    };
    let current = Settings::from_toml(&existing).map_err(|e| format!("{}: {e}; not changing it", config.display()))?;
    let same_roles = |theirs: &[Role]| {
        let mut theirs = theirs.to_vec();
        theirs.sort_unstable();
        theirs.dedup();
        theirs == roles
    };
    if let Some(other) = current.clients.iter().find(|c| c.name == name && !same_roles(&c.roles)) {
        return Err(format!(
            "client `{name}` exists with roles [{}]; a rotation keeps the roles (pass the same --roles)",
            other.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    let token = smsgate::api::new_token();
    let quoted: Vec<String> = roles.iter().map(|r| format!("\"{r}\"")).collect();
    let separator = if existing.is_empty() || existing.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    let updated = format!(
        "{existing}{separator}\n[[clients]]\nname = \"{name}\"\ntoken_sha256 = \"{}\"\nroles = [{}]\n",
        smsgate::api::sha256_hex(&token),
        quoted.join(", ")
    );
    Settings::from_toml(&updated).map_err(|e| format!("the new entry would not load ({e}); not changing {}", config.display()))?;
    // Written beside the file and renamed over it, so a crash never leaves half a file.
    let tmp = config.with_extension("toml.tmp");
    std::fs::write(&tmp, &updated)
        .and_then(|()| match std::fs::metadata(config) {
            Ok(meta) => std::fs::set_permissions(&tmp, meta.permissions()),
            Err(_) => Ok(()),
        })
        .and_then(|()| std::fs::rename(&tmp, config))
        .map_err(|e| format!("writing {}: {e}", config.display()))?;
    Ok(token)
}

/// `send, admin, super_admin`: the roles a client may hold.
fn role_names() -> String {
    Role::ALL.map(Role::as_str).join(", ")
}

#[cfg(test)]
mod tests {
    use super::log_directives;

    #[test]
    fn the_database_driver_logs_no_parameters_unless_asked() {
        assert_eq!(log_directives("debug"), "debug,tokio_postgres=info");
        assert_eq!(log_directives("trace,smsgate=debug"), "trace,smsgate=debug,tokio_postgres=info");
        assert_eq!(log_directives("debug,tokio_postgres=debug"), "debug,tokio_postgres=debug");
    }
}
