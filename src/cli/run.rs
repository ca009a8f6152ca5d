//! `obtc-pool run --config FILE`: start the pool (ledger, job source, Stratum server, chain
//! watcher) and serve until Ctrl-C or SIGTERM; then stop accepting, let in-flight appends
//! finish, flush the ledger and exit 0.
//!
//! Before serving miners it records the configured payout rule in the ledger (a durable
//! `PayoutRuleSet`) unless the rule recorded last is the same, so every block found from now on
//! is credited by the rule the config names, and blocks found earlier keep theirs.

use crate::config::{Config, ExtraAmount, NodeSettings};
use anyhow::Context;
use node_rpc::{NodeAuth, NodeClient, NodeEndpoint, NodeError};
use pool_core::event::{BlockCandidate, NetworkFeePayer, PayoutRule, PayoutScheme};
use pool_core::{Event, Target};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use stratum::job::{ExtraOutput, JobConfig, OutputValue};
use stratum::server::chain_guard::{ChainCheckError, ChainGuard};
use stratum::server::job_source::{NodeSource, TemplateSource};
use stratum::server::submit::SubmitSettings;
use stratum::server::{Server, ServerConfig};
use stratum::session::SessionConfig;
use stratum::vardiff::VardiffConfig;
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

/// The server settings a validated configuration describes.
pub fn server_config(config: &Config) -> anyhow::Result<ServerConfig> {
    let chain = config.chain;
    let s = &config.stratum;
    let mut session = SessionConfig::new(chain, s.extranonce2_size);
    session.version_mask = s.version_rolling_mask;
    session.vardiff = VardiffConfig {
        initial_difficulty: s.vardiff.start_difficulty,
        min_difficulty: s.vardiff.min_difficulty,
        max_difficulty: s.vardiff.max_difficulty,
        target_interval_ms: s.vardiff.target_share_interval.as_millis() as u64,
        ..VardiffConfig::default()
    };
    let mut job = JobConfig::new(
        chain,
        s.pool_tag.as_bytes(),
        config.pool.payout.script_pubkey.clone(),
    );
    job.extranonce2_size = s.extranonce2_size;
    job.extra_outputs = config
        .pool
        .extra_outputs
        .iter()
        .map(|o| ExtraOutput {
            value: match o.amount {
                ExtraAmount::Sats(v) => OutputValue::Fixed(pool_core::Sats(v)),
                ExtraAmount::BasisPoints(b) => OutputValue::BasisPoints(b),
            },
            script_pubkey: o.address.script_pubkey.clone(),
        })
        .collect();
    job.pool_block_target = match config.pool.pool_block_difficulty {
        Some(d) => Some(
            Target::from_difficulty(d)
                .map_err(|e| anyhow::anyhow!("pool.pool_block_difficulty {d}: {e}"))?,
        ),
        None => None,
    };
    let client = |url: &str, auth: &NodeAuth, n: &crate::config::RpcNodeSettings| {
        NodeClient::new(NodeEndpoint {
            url: url.to_owned(),
            auth: auth.clone(),
            timeout: n.rpc_timeout,
            longpoll_timeout: n.longpoll_timeout,
        })
    };
    let (source, mut submit, submit_also) = match &config.node {
        NodeSettings::Synthetic => (TemplateSource::Synthetic, SubmitSettings::default(), vec![]),
        NodeSettings::Rpc(n) => (
            TemplateSource::Node(NodeSource {
                client: client(&n.url, &n.auth, n),
                longpoll: n.longpoll,
                refresh_interval: n.refresh_interval,
                max_retry_backoff: n.max_retry_backoff,
                guard: Arc::new(ChainGuard::new(chain)),
            }),
            n.submit.clone(),
            n.submit_also
                .iter()
                .map(|(url, auth)| client(url, auth, n))
                .collect(),
        ),
    };
    // Test hook: widen the gap between a block's verdict and its append (crash tests).
    if let Some(ms) = std::env::var("OBTC_TEST_VERDICT_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        submit.verdict_delay = std::time::Duration::from_millis(ms);
    }
    Ok(ServerConfig {
        listen: s.listen,
        max_line_bytes: s.max_line_bytes,
        max_connections_per_ip: s.max_connections_per_ip,
        idle_timeout: s.idle_timeout,
        session,
        job_config: job,
        source,
        notify_listen: config.notify.listen,
        submit,
        submit_also,
        flood: s.flood,
        bans: std::sync::Arc::new(stratum::ban::BanStore::new(s.bans.clone())),
    })
}

/// The chain watcher's node and settings (`None` without a node: nothing to watch). Wiring:
/// `payout::watcher::spawn(node, live, server.tips(), settings, shutdown)` before the server
/// runs, and the returned handle awaited before the ledger is closed.
pub fn watcher_settings(config: &Config) -> Option<(NodeClient, payout::watcher::WatcherSettings)> {
    let NodeSettings::Rpc(n) = &config.node else {
        return None;
    };
    let node = NodeClient::new(NodeEndpoint {
        url: n.url.clone(),
        auth: n.auth.clone(),
        timeout: n.rpc_timeout,
        longpoll_timeout: n.longpoll_timeout,
    });
    let settings = payout::watcher::WatcherSettings {
        interval: n.watch_interval,
        coinbase_maturity: u64::from(config.chain.coinbase_maturity),
        max_retry_backoff: n.max_retry_backoff,
        genesis: Some(config.chain.genesis),
    };
    Some((node, settings))
}

/// Refuses a node that serves another chain and credentials the node refuses (a typo, not an
/// outage), with the chain guard the job source and the submitter use; a node that is down is
/// only a warning: the pool starts, and hands out no work until the guard's check passes.
async fn check_node(node: &NodeSource) -> anyhow::Result<()> {
    match node.guard.check(&node.client).await {
        Ok(()) => Ok(()),
        Err(ChainCheckError::WrongChain(why)) => anyhow::bail!(
            "the node at {} serves another chain ({why}): wrong node for this chain preset",
            node.client.endpoint().url
        ),
        Err(ChainCheckError::Node(e @ NodeError::Unauthorized { .. })) => {
            anyhow::bail!("{e}: check [node] user/password or cookie_file in the config")
        }
        Err(ChainCheckError::Node(e)) => {
            tracing::warn!(
                "node not answering yet ({e}); the pool starts anyway and keeps retrying"
            );
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let server_config = server_config(&config)?;
    if let TemplateSource::Node(n) = &server_config.source {
        check_node(n).await?;
        for also in &server_config.submit_also {
            if let Err(e) = also.get_blockchain_info().await {
                tracing::warn!(url = %also.endpoint().url, "submit_also node not answering yet: {e}");
            }
        }
    }
    let data_dir = &config.ledger.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the ledger directory {}", data_dir.display()))?;
    let ledger = ledger::Ledger::open(data_dir)
        .with_context(|| format!("cannot open the ledger in {}", data_dir.display()))?;
    match ledger.head() {
        Some(head) => tracing::info!(seq = head.seq, dir = %data_dir.display(), "ledger opened"),
        None => tracing::info!(dir = %data_dir.display(), "ledger opened (empty)"),
    }
    let scan = ledger.clone();
    let start = tokio::task::spawn_blocking(move || scan_ledger(&scan))
        .await
        .context("the ledger scan at start stopped")??;
    record_payout_rule(&ledger, &config.payout.rule, start.last_rule).await?;
    let signals = ShutdownSignals::install();
    let mut server = Server::bind(server_config, ledger.clone()).await?;
    server.resume_candidates(start.open_candidates);
    tracing::info!(
        chain = config.chain.name,
        pow = %config.chain.pow,
        payout = %config.pool.payout.address,
        "obtc-pool running"
    );
    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(wait_for_signal(signals, shutdown.clone()));
    let watcher = watcher_settings(&config).map(|(node, settings)| {
        let accounting = Arc::new(super::chain_watch::LedgerAccounting::new(
            ledger.clone(),
            projections::ProjectionConfig {
                coinbase_maturity: settings.coinbase_maturity,
            },
        ));
        payout::watcher::spawn(node, accounting, server.tips(), settings, shutdown.clone())
    });
    server.run(shutdown).await;
    // The watcher may be inside an append: the ledger closes after it.
    if let Some(watcher) = watcher {
        if let Err(e) = watcher.await {
            tracing::error!("the chain watcher task failed: {e}");
        }
    }
    signals.abort();
    ledger.close().await;
    tracing::info!("ledger flushed; bye");
    Ok(())
}

/// What the pool needs from its ledger at start.
pub struct StartScan {
    /// The last `PayoutRuleSet`, with its sequence number.
    pub last_rule: Option<(u64, PayoutRule)>,
    /// Block candidates with no verdict yet, in ledger order.
    pub open_candidates: Vec<BlockCandidate>,
}

/// Reads the ledger once for the payout rule in force and the open block candidates.
///
/// Cost: this reads and decodes every record (a full scan, O(ledger size)) on each start; fine
/// while ledgers are millions of records, to be replaced by a projection snapshot when start-up
/// time matters.
pub fn scan_ledger(ledger: &ledger::Ledger) -> anyhow::Result<StartScan> {
    let mut last_rule = None;
    let mut open: Vec<BlockCandidate> = Vec::new();
    for record in ledger.read_from(0) {
        let record = record.context("reading the ledger at start")?;
        match record.event {
            Event::PayoutRuleSet(rule) => last_rule = Some((record.seq, rule)),
            Event::BlockCandidate(c) if !open.iter().any(|o| o.block_id == c.block_id) => {
                open.push(c)
            }
            Event::BlockFound(f) => open.retain(|o| o.block_id != f.block_id),
            Event::BlockRejected(r) => open.retain(|o| o.block_id != r.block_id),
            _ => {}
        }
    }
    Ok(StartScan {
        last_rule,
        open_candidates: open,
    })
}

/// Appends the configured rule (durably) unless it is the one recorded last.
async fn record_payout_rule(
    ledger: &ledger::Ledger,
    configured: &PayoutRule,
    recorded: Option<(u64, PayoutRule)>,
) -> anyhow::Result<()> {
    match recorded {
        Some((seq, rule)) if rule == *configured => {
            tracing::info!(seq, rule = %describe_rule(&rule), "payout rule unchanged");
        }
        previous => {
            let appended = ledger
                .append(Event::PayoutRuleSet(configured.clone()))
                .await
                .context("cannot record the payout rule in the ledger")?;
            match previous {
                Some((seq, rule)) => tracing::info!(
                    seq = appended.seq,
                    rule = %describe_rule(configured),
                    previous_seq = seq,
                    previous = %describe_rule(&rule),
                    "payout rule recorded (changed)"
                ),
                None => tracing::info!(
                    seq = appended.seq,
                    rule = %describe_rule(configured),
                    "payout rule recorded (first)"
                ),
            }
        }
    }
    Ok(())
}

/// One line for logs and reports: scheme and window, fee and its address, network fee payer.
pub fn describe_rule(rule: &PayoutRule) -> String {
    let scheme = match &rule.scheme {
        PayoutScheme::Pplns {
            window_numerator,
            window_denominator,
        } => format!("PPLNS window {window_numerator}/{window_denominator} x block work"),
        PayoutScheme::Prop => "PROP".to_owned(),
        PayoutScheme::Solo => "SOLO".to_owned(),
    };
    let fee_address = if rule.fee_address.0.is_empty() {
        "(none)"
    } else {
        rule.fee_address.0.as_str()
    };
    let payer = match rule.network_fee_payer {
        NetworkFeePayer::Pool => "pool",
        NetworkFeePayer::Miners => "miners",
    };
    format!(
        "{scheme}, pool fee {} bps to {fee_address}, network fees paid by {payer}",
        rule.fee_bps
    )
}

/// SIGINT (Ctrl-C) and SIGTERM handlers, installed before the pool listens: a signal that
/// arrives as soon as miners (or a test) can connect must stop the pool cleanly, not kill it by
/// the default action.
pub(crate) struct ShutdownSignals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignals {
    pub(crate) fn install() -> ShutdownSignals {
        use tokio::signal::unix::{signal, SignalKind};
        let listen = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("cannot listen for {name}: {e}");
                None
            }
        };
        ShutdownSignals {
            interrupt: listen(SignalKind::interrupt(), "Ctrl-C"),
            terminate: listen(SignalKind::terminate(), "SIGTERM"),
        }
    }
}

async fn recv_or_never(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

pub(crate) async fn wait_for_signal(mut signals: ShutdownSignals, shutdown: CancellationToken) {
    tokio::select! {
        _ = recv_or_never(signals.interrupt.as_mut()) => tracing::info!("Ctrl-C: shutting down"),
        _ = recv_or_never(signals.terminate.as_mut()) => tracing::info!("SIGTERM: shutting down"),
    }
    shutdown.cancel();
}
