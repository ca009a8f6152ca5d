//! `loadgen`: a Stratum V1 load generator and a null server to measure it against.
//!
//! `loadgen run` opens N connections, has each subscribe, authorize and wait for work, then
//! submits shares for a fixed window, either closed loop (K in flight per connection) or open
//! loop (a fixed total rate spread over the connections, latency measured from the scheduled
//! send time), and reports accepted/rejected per second and p50/p99/p999 submit latency.
//! `loadgen idle` opens N connections, has each subscribe, authorize and get work, then holds
//! them open without a word (the pool's memory per idle connection, `scripts/bench-idle.sh`).
//! `loadgen rpc` is the JSON-RPC side: N clients calling one method back to back over HTTP
//! keep-alive for a fixed window (`scripts/bench-rpc.sh`).
//! `loadgen null-server` answers every request at once and checks nothing: the ceiling of this
//! machine and this generator, against which pool figures are read as a ratio.
//!
//! `--workers N` spreads the connections over N worker names (connection i authorizes and submits
//! as `USERNAME.w{i mod N}`) and the result counts accepted shares per worker; `--target A,B`
//! lists pools to fail over to (a connection the pool closes connects to the next one and goes
//! on); `--record FILE` writes every submit's outcome, one line each, so a test can check each
//! acknowledged share against a ledger.
//!
//! The generator never hashes: the pool under test is configured so that every submit meets
//! the share target (`--mode valid`) or nearly none does (`--mode invalid`); the mode is a label
//! carried into the result.

mod null_server;
mod report;
mod rpc;
mod session;
mod wire;

use clap::{Parser, Subcommand, ValueEnum};
use report::{RunResult, RunShape, Tally};
use session::{Load, Login, Window};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;

#[derive(Debug, Parser)]
#[command(name = "loadgen", about = "Stratum V1 load generator and null server")]
struct Cli {
    /// Tokio worker threads (default: one per core).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Answer every Stratum request at once, check nothing (the ceiling to compare with).
    NullServer {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Open connections and submit shares for a fixed window.
    Run(RunArgs),
    /// Open connections, subscribe, authorize, get work, then hold them idle.
    Idle(IdleArgs),
    /// Call a JSON-RPC method from N concurrent HTTP clients for a fixed window.
    Rpc(rpc::RpcArgs),
}

#[derive(Debug, clap::Args)]
struct IdleArgs {
    /// Pool address, HOST:PORT.
    #[arg(long)]
    target: String,
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Worker name for mining.authorize: ADDR[.worker].
    #[arg(long)]
    username: String,
    /// Time allowed for all connections to get ready, seconds.
    #[arg(long, default_value_t = 120.0)]
    handshake_timeout: f64,
    /// How long to hold the connections once all are ready, seconds (default: until killed).
    #[arg(long)]
    hold: Option<f64>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    /// The pool is configured so every submit meets the share target.
    Valid,
    /// The pool is configured so nearly every submit is above target (error 23).
    Invalid,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Pool address, HOST:PORT; several, comma-separated, for failover: every connection starts
    /// on the first that answers and moves to the next when the pool closes it.
    #[arg(long)]
    target: String,
    #[arg(long, default_value_t = 10)]
    connections: usize,
    /// Closed loop: submits in flight per connection.
    #[arg(long, default_value_t = 1)]
    in_flight: usize,
    /// Open loop: total submits per second over all connections (ignores --in-flight).
    #[arg(long)]
    rate: Option<f64>,
    /// Measured window, seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// How long to wait for replies owed after the window, milliseconds.
    #[arg(long, default_value_t = 2000)]
    drain_ms: u64,
    /// Time allowed for all connections to connect, subscribe, authorize and get work, seconds.
    #[arg(long, default_value_t = 30.0)]
    handshake_timeout: f64,
    /// Worker name for mining.authorize and mining.submit: ADDR[.worker].
    #[arg(long)]
    username: String,
    /// Spread the connections over this many worker names: connection i is USERNAME.w{i mod N}.
    #[arg(long)]
    workers: Option<usize>,
    /// Write every submit's outcome to this file, one line each:
    /// `OUTCOME WORKER EXTRANONCE1 EXTRANONCE2 NTIME NONCE JOB_ID` (OUTCOME: `true`, the error
    /// code, `unanswered` or `unreadable`).
    #[arg(long)]
    record: Option<std::path::PathBuf>,
    #[arg(long, default_value = "x")]
    password: String,
    #[arg(long, value_enum, default_value_t = Mode::Valid)]
    mode: Mode,
    /// Print the one-line JSON result on stdout (the human summary goes to stderr).
    #[arg(long)]
    json: bool,
}

/// At most this many connections handshake at once, so a burst of 1,000 does not overflow the
/// pool's accept backlog.
const CONCURRENT_HANDSHAKES: usize = 256;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(threads) = cli.threads {
        builder.worker_threads(threads.max(1));
    }
    let runtime = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::NullServer { listen } => {
                null_server::serve(listen).await.map(|()| ExitCode::SUCCESS)
            }
            Command::Run(args) => run(args).await,
            Command::Idle(args) => idle(args).await,
            Command::Rpc(args) => rpc::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    anyhow::ensure!(args.in_flight > 0, "--in-flight must be at least 1");
    anyhow::ensure!(
        args.duration.is_finite() && args.duration > 0.0,
        "--duration must be positive"
    );
    anyhow::ensure!(
        args.handshake_timeout.is_finite() && args.handshake_timeout > 0.0,
        "--handshake-timeout must be positive"
    );
    if let Some(rate) = args.rate {
        anyhow::ensure!(rate.is_finite() && rate > 0.0, "--rate must be positive");
    }
    if let Some(workers) = args.workers {
        anyhow::ensure!(workers > 0, "--workers must be at least 1");
    }
    let targets: Vec<String> = args
        .target
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    anyhow::ensure!(!targets.is_empty(), "--target names no pool");
    let n = args.connections;
    let shape = RunShape {
        target: args.target.clone(),
        mode: match args.mode {
            Mode::Valid => "valid".into(),
            Mode::Invalid => "invalid".into(),
        },
        connections: n,
        in_flight: args.in_flight,
        rate: args.rate,
        duration_s: args.duration,
    };
    let handshake_deadline = Instant::now() + Duration::from_secs_f64(args.handshake_timeout);
    let permits = Arc::new(Semaphore::new(CONCURRENT_HANDSHAKES));
    let (start_tx, start_rx) = watch::channel::<Option<Window>>(None);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Result<(), String>>();
    let targets = Arc::new(targets);
    let password = Arc::new(args.password.clone());

    let mut tasks = Vec::with_capacity(n);
    for index in 0..n {
        let load = match args.rate {
            Some(rate) => Load::Open {
                interval: Duration::from_secs_f64(n as f64 / rate),
                offset: Duration::from_secs_f64(index as f64 / rate),
            },
            None => Load::Closed {
                in_flight: args.in_flight,
            },
        };
        let (permits, ready_tx, mut start_rx) =
            (permits.clone(), ready_tx.clone(), start_rx.clone());
        let login = Login {
            targets: targets.clone(),
            username: match args.workers {
                Some(workers) => format!("{}.w{}", args.username, index % workers),
                None => args.username.clone(),
            },
            password: password.clone(),
            record: args.record.is_some(),
        };
        tasks.push(tokio::spawn(async move {
            let handshake = async {
                let _permit = permits.acquire().await;
                let timeout = handshake_deadline.saturating_duration_since(Instant::now());
                session::connect(&login, timeout).await
            };
            let ready = match tokio::time::timeout_at(handshake_deadline, handshake).await {
                Ok(Ok(ready)) => ready,
                Ok(Err(e)) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return None;
                }
                Err(_) => {
                    let _ = ready_tx.send(Err("handshake timed out".into()));
                    return None;
                }
            };
            let _ = ready_tx.send(Ok(()));
            let window = loop {
                if let Some(window) = *start_rx.borrow_and_update() {
                    break window;
                }
                if start_rx.changed().await.is_err() {
                    return None;
                }
            };
            Some(ready.run(load, window).await)
        }));
    }
    drop(ready_tx);

    let mut connected = 0usize;
    let mut failures: Vec<String> = Vec::new();
    while connected + failures.len() < n {
        match tokio::time::timeout_at(handshake_deadline + Duration::from_secs(1), ready_rx.recv())
            .await
        {
            Ok(Some(Ok(()))) => connected += 1,
            Ok(Some(Err(e))) => failures.push(e),
            Ok(None) | Err(_) => break,
        }
    }
    let connect_failures = n - connected;
    if connect_failures > 0 {
        eprintln!(
            "{connect_failures} of {n} connections failed to get ready (first: {})",
            failures.first().map_or("timed out", String::as_str)
        );
    }

    let duration = Duration::from_secs_f64(args.duration);
    let drain = Duration::from_millis(args.drain_ms);
    let window = Window {
        start: Instant::now() + Duration::from_millis(100),
        duration,
        drain,
    };
    let _ = start_tx.send(Some(window));
    // Each session stops by itself after window + drain; this bound only catches a session
    // stuck in a write the pool never reads (or a failover handshake begun at the window's end).
    let hard_end = window.start + duration + drain + Duration::from_secs(10);

    let mut total = Tally::new();
    let mut dropped_connections = 0usize;
    for task in tasks {
        let abort = task.abort_handle();
        match tokio::time::timeout_at(hard_end, task).await {
            Ok(Ok(Some(tally))) => {
                if tally.dropped {
                    dropped_connections += 1;
                }
                total.merge(&tally);
            }
            Ok(Ok(None)) => {}
            Ok(Err(_)) => dropped_connections += 1,
            Err(_) => {
                abort.abort();
                dropped_connections += 1;
            }
        }
    }

    if let Some(path) = &args.record {
        std::fs::write(path, &total.record)
            .map_err(|e| anyhow::anyhow!("--record {}: {e}", path.display()))?;
    }
    let result = RunResult::new(
        shape,
        connected,
        connect_failures,
        dropped_connections,
        &total,
    );
    eprint!("{}", result.human());
    if args.json {
        println!("{}", serde_json::to_string(&result)?);
    }
    if connected == 0 || connect_failures > 0 || dropped_connections > 0 {
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens the connections, completes every handshake, prints `ready N` on stdout, then holds
/// them (a pool that closes one is reported on stderr). Exits 2 when any failed to get ready.
async fn idle(args: IdleArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    anyhow::ensure!(
        args.handshake_timeout.is_finite() && args.handshake_timeout > 0.0,
        "--handshake-timeout must be positive"
    );
    let n = args.connections;
    let deadline = Instant::now() + Duration::from_secs_f64(args.handshake_timeout);
    let permits = Arc::new(Semaphore::new(CONCURRENT_HANDSHAKES));
    let login = Login {
        targets: Arc::new(vec![args.target.clone()]),
        username: args.username.clone(),
        password: Arc::new("x".into()),
        record: false,
    };
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (permits, login) = (permits.clone(), login.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire().await;
            let timeout = deadline.saturating_duration_since(Instant::now());
            session::connect(&login, timeout)
                .await
                .map(session::Ready::into_stream)
        }));
    }
    let mut streams = Vec::with_capacity(n);
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok(Ok(stream)) => streams.push(stream),
            Ok(Err(e)) => {
                first_error.get_or_insert_with(|| e.to_string());
            }
            Err(e) => {
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    if let Some(e) = first_error {
        eprintln!(
            "{} of {n} connections failed to get ready (first: {e})",
            n - streams.len()
        );
        return Ok(ExitCode::from(2));
    }
    println!("ready {}", streams.len());
    eprintln!("holding {} idle connections", streams.len());
    match args.hold {
        Some(secs) => tokio::time::sleep(Duration::from_secs_f64(secs.max(0.0))).await,
        None => std::future::pending::<()>().await,
    }
    drop(streams);
    Ok(ExitCode::SUCCESS)
}
