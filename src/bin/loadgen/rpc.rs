//! `loadgen rpc`: N concurrent JSON-RPC clients over HTTP/1.1 keep-alive connections, each
//! calling one method back to back (closed loop, one call in flight per client) for a fixed
//! window; reports calls/s, errors and p50/p99/max latency.

use crate::report::new_histogram;
use anyhow::Context;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;

#[derive(Debug, clap::Args)]
pub struct RpcArgs {
    /// The pool's RPC address, HOST:PORT.
    #[arg(long)]
    pub target: String,
    /// Concurrent clients (one connection and one call in flight each).
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// The JSON-RPC method.
    #[arg(long, default_value = "pool_status")]
    pub method: String,
    /// Its params, as JSON.
    #[arg(long, default_value = "[]")]
    pub params: String,
    /// Measured window, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Total calls per second over all clients, paced (default: back to back). A call due
    /// while the one before is still out waits for it.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Print the one-line JSON result on stdout (the human summary goes to stderr).
    #[arg(long)]
    pub json: bool,
}

/// What one client saw.
struct ClientTally {
    calls: u64,
    errors: u64,
    latencies_us: Vec<u32>,
    dropped: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RpcResult {
    pub target: String,
    pub method: String,
    pub clients: usize,
    pub rate: Option<f64>,
    pub duration_s: f64,
    pub calls: u64,
    /// JSON-RPC error replies and HTTP statuses other than 200.
    pub errors: u64,
    pub calls_per_s: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub dropped_clients: usize,
}

pub async fn run(args: RpcArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::ensure!(args.clients > 0, "--clients must be at least 1");
    anyhow::ensure!(
        args.duration.is_finite() && args.duration > 0.0,
        "--duration must be positive"
    );
    if let Some(rate) = args.rate {
        anyhow::ensure!(rate.is_finite() && rate > 0.0, "--rate must be positive");
    }
    let interval = args
        .rate
        .map(|rate| Duration::from_secs_f64(args.clients as f64 / rate));
    let params: serde_json::Value =
        serde_json::from_str(&args.params).context("--params is not JSON")?;
    let body =
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": args.method, "params": params})
            .to_string();
    let request = Arc::new(
        format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            args.target,
            body.len()
        )
        .into_bytes(),
    );
    // Every client connects and answers one call before the window opens.
    let mut streams = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        let stream = TcpStream::connect(&args.target)
            .await
            .with_context(|| format!("cannot connect to {}", args.target))?;
        stream.set_nodelay(true)?;
        let mut stream = BufReader::new(stream);
        call(&mut stream, &request)
            .await
            .context("the first call failed")?;
        streams.push(stream);
    }
    let duration = Duration::from_secs_f64(args.duration);
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + duration;
    let tasks: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(index, mut stream)| {
            let request = Arc::clone(&request);
            // Paced clients start spread over one interval.
            let offset =
                interval.map_or(Duration::ZERO, |i| i * index as u32 / args.clients as u32);
            tokio::spawn(async move {
                let mut tally = ClientTally {
                    calls: 0,
                    errors: 0,
                    latencies_us: Vec::with_capacity(64 * 1024),
                    dropped: None,
                };
                let mut due = start + offset;
                tokio::time::sleep_until(due).await;
                while Instant::now() < end {
                    if let Some(interval) = interval {
                        tokio::time::sleep_until(due).await;
                        due += interval;
                    }
                    let sent = Instant::now();
                    match call(&mut stream, &request).await {
                        Ok(ok) => {
                            let us = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                            tally.latencies_us.push(us.max(1));
                            tally.calls += 1;
                            if !ok {
                                tally.errors += 1;
                            }
                        }
                        Err(e) => {
                            tally.dropped = Some(format!("{e:#}"));
                            break;
                        }
                    }
                }
                tally
            })
        })
        .collect();
    let mut histogram = new_histogram();
    let (mut calls, mut errors, mut dropped) = (0u64, 0u64, Vec::new());
    for task in tasks {
        let tally = task.await.context("an RPC client task failed")?;
        calls += tally.calls;
        errors += tally.errors;
        for us in tally.latencies_us {
            let _ = histogram.record(u64::from(us));
        }
        if let Some(why) = tally.dropped {
            dropped.push(why);
        }
    }
    let elapsed = duration.as_secs_f64();
    let result = RpcResult {
        target: args.target.clone(),
        method: args.method.clone(),
        clients: args.clients,
        rate: args.rate,
        duration_s: args.duration,
        calls,
        errors,
        calls_per_s: calls as f64 / elapsed,
        p50_us: histogram.value_at_quantile(0.5),
        p99_us: histogram.value_at_quantile(0.99),
        p999_us: histogram.value_at_quantile(0.999),
        max_us: histogram.max(),
        dropped_clients: dropped.len(),
    };
    eprintln!(
        "{} x{} for {:.1} s: {} calls ({:.0}/s), {} errors, latency p50 {} us, p99 {} us, p999 {} us, max {} us{}",
        result.method,
        result.clients,
        result.duration_s,
        result.calls,
        result.calls_per_s,
        result.errors,
        result.p50_us,
        result.p99_us,
        result.p999_us,
        result.max_us,
        dropped
            .first()
            .map_or(String::new(), |e| format!("; {} clients dropped (first: {e})", dropped.len()))
    );
    if args.json {
        println!("{}", serde_json::to_string(&result)?);
    }
    if !dropped.is_empty() || calls == 0 {
        return Ok(std::process::ExitCode::from(2));
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// One call on a keep-alive connection: `Ok(true)` for a 200 with a JSON-RPC `result`,
/// `Ok(false)` for an error reply; `Err` when the connection failed.
async fn call(stream: &mut BufReader<TcpStream>, request: &[u8]) -> anyhow::Result<bool> {
    stream.get_mut().write_all(request).await?;
    let mut line = String::new();
    let mut status = 0u16;
    let mut length = None;
    loop {
        line.clear();
        let n = stream.read_line(&mut line).await?;
        anyhow::ensure!(n > 0, "the server closed the connection");
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if status == 0 {
            status = l
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
        } else if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse::<usize>().ok();
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                anyhow::bail!("chunked replies are not supported");
            }
        }
    }
    let length = length.context("a reply without Content-Length")?;
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await?;
    // `"result":` appears in a success reply only (an error reply has `"error":`).
    let ok = status == 200 && body.windows(9).any(|w| w == b"\"result\":");
    Ok(ok)
}
