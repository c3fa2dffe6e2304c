//! Load harness: the provider simulator and the real gateway in this process (memory store or a
//! fresh PostgreSQL schema), driven over loopback HTTP.
//!
//! `cargo run --release --example load -- --store memory --concurrency 32 --seconds 10`
//! `cargo run --release --example load -- --store postgres --fault 2factor=500@20%`
//! `cargo run --release --example load -- --flood` (the abuse drill under the default limits)

mod config;
mod drive;
mod flood;
mod pg;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use serde_json::Value;
use smsgate::app::Application;
use smsgate::config::Settings;
use smsgate::sim::{self, Fault, SimOptions};

/// How a run without simulator faults is labelled.
const NO_FAULT: &str = "none";

#[derive(Parser)]
#[command(about = "Drive POST /v1/otp/send against an in-process gateway and provider simulator")]
struct Args {
    #[arg(long, value_enum, default_value_t = StoreKind::Memory)]
    store: StoreKind,
    /// Server (loopback) in whose database a fresh schema is made and dropped.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    database_url: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=4096))]
    concurrency: u64,
    /// Length of the throughput run.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    seconds: u64,
    /// A simulator fault, `NAME=SPEC` (for example `2factor=500@20%`); repeatable.
    #[arg(long = "fault", value_parser = sim::parse_named)]
    faults: Vec<(String, Option<Fault>)>,
    /// Run the abuse drill under the default limits instead of the throughput run.
    #[arg(long)]
    flood: bool,
    /// Flood: requests in each of the drill's three parts.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    flood_requests: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    Memory,
    Postgres,
}

/// The running gateway, as a client sees it.
#[derive(Clone)]
pub struct Target {
    base: String,
    http: reqwest::Client,
}

impl Target {
    /// POSTs `body` with the harness token; answers the status and whether it was a replay.
    pub async fn post(&self, path: &str, body: &Value, idempotency_key: Option<&str>) -> reqwest::Result<(u16, bool)> {
        let mut req = self.http.post(format!("{}{path}", self.base)).bearer_auth(config::TOKEN).json(body);
        if let Some(key) = idempotency_key {
            req = req.header("Idempotency-Key", key);
        }
        let res = req.send().await?;
        let replayed = res.headers().get("Idempotent-Replayed").is_some_and(|v| v == "true");
        let status = res.status().as_u16();
        res.bytes().await?;
        Ok((status, replayed))
    }

    async fn metrics(&self) -> anyhow::Result<String> {
        Ok(self.http.get(format!("{}/metrics", self.base)).send().await?.text().await?)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("SMSGATE_LOG").unwrap_or_else(|_| "error".into());
    tracing_subscriber::fmt().with_env_filter(filter).init();

    let faults: Vec<(String, Fault)> = args.faults.iter().filter_map(|(n, f)| Some((n.clone(), f.clone()?))).collect();
    let fault_text = faults.iter().map(|(n, f)| format!("{n}={f}")).collect::<Vec<_>>().join(",");
    let sim = sim::start(SimOptions {
        faults: faults.clone(),
        ..SimOptions::default()
    })
    .await
    .context("starting the simulator")?;
    let schema = match args.store {
        StoreKind::Memory => None,
        StoreKind::Postgres => Some(pg::Schema::create(&args.database_url).await?),
    };
    let result = run(&args, &sim, schema.as_ref(), &fault_text).await;
    if let Some(schema) = schema {
        schema.drop_now().await.context("dropping the run's schema")?;
    }
    sim.stop().await;
    if !result? {
        std::process::exit(1);
    }
    Ok(())
}

/// Builds the gateway and runs the chosen mode; false when the flood drill found a breach.
async fn run(args: &Args, sim: &sim::SimHandle, schema: Option<&pg::Schema>, fault_text: &str) -> anyhow::Result<bool> {
    let mut settings = Settings::from_toml(&config::toml(sim, args.flood)).context("harness config")?;
    settings.server.listen = "127.0.0.1:0".into();
    settings.database_url = schema.map(|s| s.url().into());
    settings.otp_secret = Some("load-harness-secret".to_string().into());
    let app = Application::build_with(settings, Arc::new(config::secrets)).await?;
    let target = Target {
        base: format!("http://127.0.0.1:{}", app.port()),
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(args.concurrency as usize)
            .timeout(Duration::from_secs(30))
            .build()?,
    };
    let server = tokio::spawn(app.run_until_stopped());
    let store = if schema.is_some() { "postgres" } else { "memory" };
    let fault = if fault_text.is_empty() { NO_FAULT } else { fault_text };
    let concurrency = args.concurrency as usize;
    let ok = if args.flood {
        let drill = flood::run(&target, concurrency, args.flood_requests as usize).await;
        report_flood(&target, sim, &drill, store, fault).await?
    } else {
        let out = drive::run(&target, concurrency, args.seconds).await;
        report_load(&target, sim, &out, store, fault, concurrency).await?;
        true
    };
    server.abort();
    Ok(ok)
}

async fn report_load(
    target: &Target,
    sim: &sim::SimHandle,
    out: &drive::Outcome,
    store: &str,
    fault: &str,
    concurrency: usize,
) -> anyhow::Result<()> {
    let metrics = target.metrics().await?;
    let failovers = sum_of(&metrics, "smsgate_failovers_total");
    let (tf, tw) = (sim.state().calls("2factor"), sim.state().calls("twilio"));
    let statuses = out.statuses.iter().map(|(s, n)| format!("{s}={n}")).collect::<Vec<_>>().join(" ");
    println!("store={store} concurrency={concurrency} fault={fault}");
    println!(
        "  requests   {} in {:.2} s = {:.0} req/s",
        out.requests,
        out.elapsed.as_secs_f64(),
        out.per_second()
    );
    println!(
        "  latency ms p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        out.quantile_ms(0.5),
        out.quantile_ms(0.9),
        out.quantile_ms(0.99),
        out.quantile_ms(1.0)
    );
    println!("  statuses   {statuses} (0 = no answer)");
    println!("  provider calls (sim) 2factor={tf} twilio={tw}");
    println!("  failovers (/metrics) {failovers}");
    for line in metrics.lines().filter(|l| l.starts_with("smsgate_failovers_total{")) {
        println!("    {line}");
    }
    println!(
        "RESULT store={store} fault={fault} rps={:.0} p50={:.2} p90={:.2} p99={:.2} ok={} calls_2factor={tf} calls_twilio={tw} failovers={failovers}",
        out.per_second(),
        out.quantile_ms(0.5),
        out.quantile_ms(0.9),
        out.quantile_ms(0.99),
        out.statuses.get(&200).copied().unwrap_or(0)
    );
    Ok(())
}

async fn report_flood(target: &Target, sim: &sim::SimHandle, drill: &flood::Drill, store: &str, fault: &str) -> anyhow::Result<bool> {
    let metrics = target.metrics().await?;
    let (tf, tw) = (sim.state().calls("2factor"), sim.state().calls("twilio"));
    // Without faults a send makes one provider call; with faults it may try both providers.
    let per_send = if fault == NO_FAULT { 1 } else { 2 };
    let allowed = drill.max_sends * per_send;
    let limits = smsgate::config::LimitSettings::default();
    println!("flood drill: store={store} fault={fault}, default limits (per IP {}/min, per phone {}/min and {}/day, prefix {}/min, resend cooldown {} s)",
        limits.per_ip_per_minute, limits.per_phone_per_minute, limits.per_phone_per_day, limits.per_prefix_per_minute, limits.resend_cooldown_seconds);
    for ((part, status), n) in &drill.statuses {
        println!("  {part:<30} status {status}: {n}");
    }
    println!("  answers marked Idempotent-Replayed: {}", drill.replayed);
    println!("  provider calls (sim): {} (2factor={tf} twilio={tw})", tf + tw);
    println!(
        "  most the limits allow: {allowed} = per-IP {}/min x {} minute window(s) x {per_send} call(s) per send",
        limits.per_ip_per_minute, drill.windows
    );
    println!("  /metrics:");
    for line in metrics.lines().filter(|l| l.starts_with("smsgate_blocks_total")) {
        println!("    {line}");
    }
    let within = tf + tw <= allowed;
    // A drill answered with errors proves nothing about the limits.
    let errors: u64 = drill
        .statuses
        .iter()
        .filter(|((_, s), _)| *s == 0 || *s >= 500)
        .map(|(_, n)| n)
        .sum();
    println!(
        "RESULT flood calls={} allowed={allowed} errors={errors} {}",
        tf + tw,
        if !within {
            "EXCEEDED"
        } else if errors > 0 {
            "ERRORS"
        } else {
            "WITHIN"
        }
    );
    Ok(within && errors == 0)
}

/// The sum of every sample of `name` in a Prometheus text page.
fn sum_of(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |a, b| a + b)
}
