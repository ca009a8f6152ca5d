//! `obtc-pool run --config FILE`: start the pool (ledger, live projection, RPC server, job
//! source, Stratum server, chain watcher) and serve until Ctrl-C or SIGTERM; then stop accepting miners, let
//! in-flight appends finish, stop the RPC, apply the ledger's tail to the live projection and
//! snapshot it, flush the ledger and exit 0.
//!
//! Before serving miners it records the configured payout rule in the ledger (a durable
//! `PayoutRuleSet`) unless the rule recorded last is the same, so every block found from now on
//! is credited by the rule the config names, and blocks found earlier keep theirs.

mod payout_rule;
mod server_config;
pub(crate) mod services;
mod signals;
mod start;

pub use payout_rule::{describe_rule, record_payout_rule};
pub use server_config::{check_node, server_config, watcher_settings};
pub(crate) use signals::{wait_for_signal, ShutdownSignals};
pub use start::StartScan;

use crate::config::Config;
use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;
use stratum::server::job_source::TemplateSource;
use stratum::server::Server;
use tokio_util::sync::CancellationToken;

pub fn run(config_path: &Path) -> anyhow::Result<ExitCode> {
    serve_role(config_path, serve)
}

/// Loads the config and serves one role (`run`, `edge`, `core`) on a multi-thread runtime until
/// it returns; exit 0 after a clean stop.
pub(crate) fn serve_role<F, Fut>(config_path: &Path, serve: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(Config) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    init_tracing();
    let config = Config::load(config_path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let served = runtime.block_on(serve(config));
    // A long poll may still sit in a blocking RPC call; the ledger is closed by now, so do not
    // wait for the node to answer it.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    served?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let server_config = server_config(&config)?;
    if let TemplateSource::Node(n) = &server_config.source {
        check_node(n).await?;
        for also in &server_config.submit_also {
            if let Err(e) = also.get_blockchain_info().await {
                tracing::warn!(url = %also.endpoint().url, "submit_also node not answering yet: {e}");
            }
        }
    }
    let services::Opened {
        ledger,
        live,
        start,
    } = services::open(&config).await?;
    let signals = ShutdownSignals::install();
    let services = services::Services::start(
        &config,
        &live,
        server_config.bans.clone(),
        server_config.registry.clone(),
        started,
    )
    .await?;
    let mut server = Server::bind(server_config, ledger.clone()).await?;
    server.resume_candidates(start.open_candidates);
    tracing::info!(
        chain = config.chain.name,
        pow = %config.chain.pow,
        payout = %config.pool.payout.address,
        startup_ms = started.elapsed().as_millis() as u64,
        "obtc-pool running"
    );
    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(wait_for_signal(signals, shutdown.clone()));
    let watcher = watcher_settings(&config).map(|(node, settings)| {
        payout::watcher::spawn(
            node,
            live.clone(),
            server.tips(),
            settings,
            shutdown.clone(),
        )
    });
    server.run(shutdown).await;
    services.finish(watcher, signals, live, ledger).await;
    Ok(())
}
