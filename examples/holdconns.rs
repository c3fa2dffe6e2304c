//! Opens many keep-alive connections to a server, makes one request on each (`GET /healthz`)
//! so the server has set each one up fully, and holds them all open: the peak-RSS probe of
//! `scripts/bench`. Prints `open=N` once they are all up, then holds them for `--hold` seconds.
//!
//! `ulimit -n 20000; cargo run --release --example holdconns -- --addr 127.0.0.1:8080 --connections 10000`

use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    addr: String,
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    #[arg(long, default_value_t = 5)]
    hold: u64,
}

async fn open(addr: &str) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n").await?;
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await?;
    if !buf[..n].starts_with(b"HTTP/1.1 200") {
        return Err(std::io::Error::other("not a 200"));
    }
    Ok(s)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let mut held = Vec::with_capacity(args.connections);
        let mut failed = 0;
        // In waves, so the listen backlog is never the limit.
        for chunk in (0..args.connections).collect::<Vec<_>>().chunks(500) {
            let opened = futures::future::join_all(chunk.iter().map(|_| open(&args.addr))).await;
            for c in opened {
                match c {
                    Ok(s) => held.push(s),
                    Err(_) => failed += 1,
                }
            }
        }
        println!("open={} failed={failed}", held.len());
        tokio::time::sleep(Duration::from_secs(args.hold)).await;
        anyhow::Ok(())
    })
}
