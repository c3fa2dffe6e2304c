//! Open-loop load: `POST /v1/otp/send` to fresh +91 numbers at a fixed rate, whatever the
//! answers' latency (each request is timed from when it was due, so a stall is not hidden by
//! sending less). Prints one line of totals (`key=value`), and with `--timeline` one line per
//! second, for the failover drill in `scripts/bench`.
//!
//! The requests are paced by a thread of their own, sleeping on the kernel's high-resolution
//! timers: tokio's timer wheel ticks in whole milliseconds, so paced by it every request left up
//! to a millisecond after it was due, two at a time at 2,000/s, and that lateness was counted as
//! the gateway's. What lateness remains is printed (`late_p99_ms`).
//!
//! `cargo run --release --example openloop -- --url http://127.0.0.1:8080 --token T --rate 2000 --seconds 10`

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    url: String,
    #[arg(long)]
    token: String,
    /// Requests per second.
    #[arg(long, default_value_t = 2000)]
    rate: u32,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Distinguishes this run's numbers from other runs' (0-99).
    #[arg(long, default_value_t = 0)]
    run: u32,
    /// Print p99 and errors for every second.
    #[arg(long)]
    timeline: bool,
    /// Latency from which a request counts as slow (paid a provider timeout).
    #[arg(long, default_value_t = 400)]
    slow_ms: u64,
}

#[derive(Default)]
struct Record {
    /// (second due, latency in µs, ok)
    samples: Vec<(u64, u64, bool)>,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // One thread: the generator must not take the cores the gateway is measured on.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(15))
        .build()?;
    let record = Arc::new(Mutex::new(Record::default()));
    let url = format!("{}/v1/otp/send", args.url.trim_end_matches('/'));
    let auth = format!("Bearer {}", args.token);
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    let total = u64::from(args.rate) * args.seconds;
    let start = Instant::now() + Duration::from_millis(10);
    let (due_tx, mut due_rx) = tokio::sync::mpsc::unbounded_channel();
    let pacer = std::thread::spawn(move || {
        for i in 0..total {
            let due = start + interval.mul_f64(i as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if due_tx.send((i, due)).is_err() {
                break;
            }
        }
    });
    let mut tasks = Vec::with_capacity(total as usize);
    let mut late = Vec::with_capacity(total as usize);
    while let Some((i, due)) = due_rx.recv().await {
        late.push(due.elapsed().as_micros() as u64);
        let (http, url, auth, record) = (http.clone(), url.clone(), auth.clone(), Arc::clone(&record));
        let phone = format!("+919{:02}{:07}", args.run % 100, i % 10_000_000);
        tasks.push(tokio::spawn(async move {
            let res = http
                .post(&url)
                .header("authorization", auth)
                .header("content-type", "application/json")
                .body(format!(r#"{{"phone":"{phone}"}}"#))
                .send()
                .await;
            let ok = match res {
                Ok(r) => {
                    let ok = r.status().is_success();
                    ok && r.bytes().await.is_ok()
                }
                Err(_) => false,
            };
            let latency = due.elapsed().as_micros() as u64;
            let second = due.duration_since(start).as_secs();
            record.lock().unwrap_or_else(|e| e.into_inner()).samples.push((second, latency, ok));
        }));
    }
    let _ = pacer.join();
    for t in tasks {
        let _ = t.await;
    }
    late.sort_unstable();
    let elapsed = start.elapsed().as_secs_f64();
    let record = record.lock().unwrap_or_else(|e| e.into_inner());
    let mut all: Vec<u64> = record.samples.iter().map(|s| s.1).collect();
    all.sort_unstable();
    let errors = record.samples.iter().filter(|s| !s.2).count();
    let slow = record.samples.iter().filter(|s| s.1 >= args.slow_ms * 1000).count();
    if args.timeline {
        for second in 0..args.seconds {
            let mut lat: Vec<u64> = record.samples.iter().filter(|s| s.0 == second).map(|s| s.1).collect();
            lat.sort_unstable();
            let errs = record.samples.iter().filter(|s| s.0 == second && !s.2).count();
            println!(
                "second={second} requests={} p99_ms={:.2} errors={errs}",
                lat.len(),
                percentile(&lat, 0.99)
            );
        }
    }
    println!(
        "requests={} rate={:.0} errors={errors} slow={slow} p50_ms={:.2} p99_ms={:.2} p999_ms={:.2} late_p99_ms={:.2}",
        all.len(),
        all.len() as f64 / elapsed,
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        percentile(&all, 0.999),
        percentile(&late, 0.99),
    );
    Ok(())
}
