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
mod signals;
mod start;

pub use payout_rule::{describe_rule, record_payout_rule};
pub use server_config::{check_node, server_config, watcher_settings};
pub(crate) use signals::{wait_for_signal, ShutdownSignals};
pub use start::StartScan;

use crate::config::Config;
use crate::live::follower;
use crate::rpc::RpcServer;
use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;
use stratum::server::job_source::TemplateSource;
use stratum::server::Server;
use tokio_util::sync::CancellationToken;

pub fn run(config_path: &Path) -> anyhow::Result<ExitCode> {
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
    let ledger = start::open_ledger(&config.ledger)?;
    let live = start::open_live(ledger.clone(), config.chain).await?;
    let start = start::scan(&live).await?;
    record_payout_rule(&ledger, &config.payout.rule, start.last_rule).await?;
    let rule = &config.payout.rule;
    if rule.network_fee_payer == pool_core::event::NetworkFeePayer::Pool && rule.fee_bps == 0 {
        tracing::warn!(
            fee_address = %rule.fee_address,
            "network_fee_payer = pool with fee_bps = 0: the operator pays every payment's network \
             fee (the fee address's debt shows it), so the wallet needs coins beyond the rewards"
        );
    }
    let signals = ShutdownSignals::install();
    // The follower stops last (after Stratum and the RPC), or on any early return.
    let follower_stop = CancellationToken::new();
    let _follower_guard = follower_stop.clone().drop_guard();
    let follower = follower::spawn(live.clone(), follower_stop.clone());
    let retention = config.ledger.retention.clone().map(|r| {
        tracing::info!(
            archive_dir = %r.archive_dir.display(),
            retain_records = r.retain_records,
            "automatic archiving on"
        );
        crate::live::archive::spawn_retention(live.clone(), r, follower_stop.clone())
    });
    let rpc = match &config.rpc {
        Some(settings) => {
            let context = crate::rpc::RpcContext {
                live: live.clone(),
                bans: server_config.bans.clone(),
                config: std::sync::Arc::new(config.clone()),
                started,
                registry: server_config.registry.clone(),
                verifier: crate::rpc::operator::verify::Verifier::new(settings.verify_min_interval),
            };
            Some(RpcServer::start(settings, std::sync::Arc::new(context)).await?)
        }
        None => {
            tracing::info!("no [rpc] section: the RPC server is off (the payout process needs it)");
            None
        }
    };
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
    // The watcher may be inside an append: the ledger closes after it.
    if let Some(watcher) = watcher {
        if let Err(e) = watcher.await {
            tracing::error!("the chain watcher task failed: {e}");
        }
    }
    signals.abort();
    if let Some(rpc) = rpc {
        rpc.stop().await;
    }
    follower_stop.cancel();
    if let Some(retention) = retention {
        let _ = retention.await;
    }
    let _ = follower.await;
    start::finish_live(live).await;
    ledger.close().await;
    tracing::info!("ledger flushed; bye");
    Ok(())
}
