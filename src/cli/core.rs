//! `obtc-pool core --config FILE`: the scale-out pool's only ledger writer. It runs what
//! `obtc-pool run` runs around the ledger (live projection, payout rule, follower, archiving,
//! RPC server, chain watcher) without a Stratum server, and applies the edges' share stream to
//! the ledger ([`stream::consumer`]), publishing its head and the operator's bans back and
//! merging the edges' live statistics into `pool_stats` / `miner_workers`
//! ([`stream::core_control`]). The config must have `[stream]`.
//!
//! Start: ledger and projection, payout rule, signals, RPC, chain watcher (poked whenever an
//! applied batch holds a block candidate or verdict), NATS (retried with a log line until it
//! answers; a stream whose settings could drop messages is refused), the applied-batch state
//! scanned from the ledger, the consumer, the control task, then the log line
//! `obtc-pool core running`. The applied-batch state comes from `stream-applied.bin` in the
//! ledger's directory plus the ledger after it (the whole ledger when the file is missing or
//! does not match it), and is written there every 30 s while batches arrive and at a clean
//! stop. Stop (Ctrl-C, SIGTERM): the consumer finishes the messages in hand
//! (appended and acknowledged, or left unacknowledged for the next start), the control task and
//! the watcher stop, open block submissions get their `shutdown_wait`, then the RPC server,
//! follower and snapshot, the ledger's flush; exit 0.
//!
//! **Block candidates left open** (an edge recorded a candidate and died before its verdict):
//! the core resolves them with stratum's `Submitter` against its own `[node]`, but only once a
//! candidate is [`CANDIDATE_GRACE`] old (checked at start and every [`CANDIDATE_SWEEP`]), since
//! a live edge resolves its own candidates, normally within a second. Before it records a
//! verdict the core waits for its projection to apply everything durable and drops its verdict
//! if the candidate has one by then ([`VerdictGuard`]). What remains is a verdict of an edge
//! still in the stream at that moment (its node was down for minutes): then the ledger holds two
//! verdicts, and the projection counts only the first (the second is an `VerdictAfterVerdict`
//! anomaly in the audit's report; credits and balances are those of the first verdict, which
//! for the same block from the same chain is the same verdict in practice).

use crate::cli::run::services;
use crate::cli::run::ShutdownSignals;
use crate::cli::run::{check_node, serve_role, server_config, wait_for_signal, watcher_settings};
use crate::config::Config;
use crate::live::Live;
use anyhow::Context;
use pool_core::event::{BlockCandidate, Event, LedgerAnchor};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stratum::ban::BanStore;
use stratum::server::job_source::{ChainTip, TemplateSource};
use stratum::server::registry::Registry;
use stratum::server::submit::Submitter;
use stratum::sink::{Durable, EventSink, SinkError};
use stream::consumer::{AppliedGroup, Consumer, ConsumerOptions, ConsumerStats};
use stream::core_control::{CoreControl, CoreControlOptions};
use stream::dedupe::Dedupe;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The applied-batch state file in the ledger's directory ([`Dedupe::save`]).
pub const STATE_FILE: &str = "stream-applied.bin";

/// A block candidate younger than this is left to the edge that found it.
pub const CANDIDATE_GRACE: Duration = Duration::from_secs(120);
/// How often the core looks for open candidates past the grace.
pub const CANDIDATE_SWEEP: Duration = Duration::from_secs(60);

pub fn run(config_path: &Path) -> anyhow::Result<ExitCode> {
    serve_role(config_path, |config| serve(config, config_path))
}

async fn serve(config: Config, config_path: &Path) -> anyhow::Result<()> {
    let Some(settings) = config.stream.clone() else {
        anyhow::bail!(
            "{}: obtc-pool core needs a [stream] section (the NATS servers of the share stream)",
            config_path.display()
        );
    };
    let started = Instant::now();
    // The node for the watcher and for open candidates, as `run` configures it.
    let stratum_config = server_config(&config)?;
    if let TemplateSource::Node(n) = &stratum_config.source {
        // A node of another chain, or credentials it refuses, stop the start (as for `run`).
        check_node(n).await?;
    }
    let bans = Arc::new(BanStore::new(config.stratum.bans.clone()));
    let registry = Arc::new(Registry::new());
    let services::Opened {
        ledger,
        live,
        start,
    } = services::open(&config).await?;
    let signals = ShutdownSignals::install();
    let services =
        services::Services::start(&config, &live, bans.clone(), registry.clone(), started).await?;
    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(wait_for_signal(signals, shutdown.clone()));

    let (tips_tx, tips) = watch::channel(None::<ChainTip>);
    let watcher = watcher_settings(&config).map(|(node, settings)| {
        payout::watcher::spawn(node, live.clone(), tips, settings, shutdown.clone())
    });

    // Open candidates: resolved once they are past the grace (see the module docs).
    let tasks = TaskTracker::new();
    let (refetch, _) = tokio::sync::mpsc::channel(1);
    let primary = match &stratum_config.source {
        TemplateSource::Node(n) => Some((n.client.clone(), n.guard.clone())),
        TemplateSource::Synthetic => None,
    };
    let submitter = Arc::new(Submitter::new(
        primary,
        stratum_config.submit_also.clone(),
        Arc::new(VerdictGuard { live: live.clone() }),
        stratum_config.submit.clone(),
        refetch,
        tasks.clone(),
        shutdown.clone(),
    ));
    let sweeper = tokio::spawn(sweep_candidates(
        live.clone(),
        submitter.clone(),
        start.open_candidates,
        shutdown.clone(),
    ));

    let consumed =
        match stream::core_control::connect(&settings, "obtc-pool core", &shutdown).await? {
            Some(js) => {
                let scan_ledger = ledger.clone();
                let state_file = config.ledger.data_dir.join(STATE_FILE);
                let path = state_file.clone();
                let (dedupe, report) =
                    tokio::task::spawn_blocking(move || Dedupe::load_or_scan(&scan_ledger, &path))
                        .await
                        .context("the applied-batch scan stopped")?
                        .context("cannot scan the ledger's stream batches")?;
                tracing::info!(
                    records = report.records,
                    stream_batches = report.batches,
                    edge_boots = dedupe.boot_count(),
                    last_stream_seq = dedupe.last_stream_seq(),
                    from_state_file_at = report.from_file,
                    ms = report.millis,
                    "start-up: applied stream batches read from the ledger"
                );
                let tips_tx = tips_tx.clone();
                let consumer = Consumer::new(
                    js.clone(),
                    settings.clone(),
                    ledger.clone(),
                    dedupe,
                    ConsumerOptions {
                        state_file: Some(state_file),
                        ..ConsumerOptions::default()
                    },
                )
                .on_applied(Arc::new(move |group: &AppliedGroup<'_>| {
                    poke_watcher(&tips_tx, group)
                }));
                let stats = consumer.stats();
                let consumer = tokio::spawn(consumer.run(shutdown.clone()));
                let control = stream::core_control::spawn(
                    CoreControl {
                        client: js.client(),
                        subjects: settings.subjects(),
                        ledger: ledger.clone(),
                        bans: bans.clone(),
                        registry: registry.clone(),
                        options: CoreControlOptions::new(&settings),
                    },
                    shutdown.clone(),
                );
                tracing::info!(
                    chain = config.chain.name,
                    stream = %settings.name,
                    consumer = %settings.consumer,
                    servers = %settings.servers.join(","),
                    startup_ms = started.elapsed().as_millis() as u64,
                    "obtc-pool core running"
                );
                Some((consumer, control, stats))
            }
            None => None,
        };
    shutdown.cancelled().await;
    if let Some((consumer, control, stats)) = consumed {
        if let Err(e) = consumer.await {
            tracing::error!("the stream consumer task failed: {e}");
        }
        let _ = control.await;
        log_final(&stats);
    }
    let _ = sweeper.await;
    tasks.close();
    tasks.wait().await;
    services.finish(watcher, signals, live, ledger).await;
    Ok(())
}

async fn sleep_or_shutdown(d: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

/// A candidate or verdict came in: the chain watcher looks again.
fn poke_watcher(tips: &watch::Sender<Option<ChainTip>>, group: &AppliedGroup<'_>) {
    let tip = group
        .block_events
        .iter()
        .filter_map(|e| match e {
            Event::BlockFound(b) => Some(ChainTip {
                height: b.height,
                block_id: b.block_id,
            }),
            Event::BlockCandidate(b) => Some(ChainTip {
                height: b.height,
                block_id: b.block_id,
            }),
            _ => None,
        })
        .max_by_key(|t| t.height);
    if let Some(tip) = tip {
        tips.send_replace(Some(tip));
    }
}

fn log_final(stats: &ConsumerStats) {
    let s = stats.snapshot();
    tracing::info!(
        batches = s.applied_batches,
        events = s.applied_events,
        skipped_duplicates = s.skipped_duplicates,
        gap_reports = s.gap_reports,
        missing_batches = s.missing_batches,
        sequence_jumps = s.sequence_jumps,
        lag_p50_ms = s.lag.p50_ms,
        lag_p99_ms = s.lag.p99_ms,
        "stream consumer stopped"
    );
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Hands candidates past the grace to the submitter: those open at start, then every sweep.
async fn sweep_candidates(
    live: Arc<Live>,
    submitter: Arc<Submitter>,
    at_start: Vec<BlockCandidate>,
    shutdown: CancellationToken,
) {
    let mut candidates = at_start;
    loop {
        let now = now_ms();
        for c in candidates {
            let age = Duration::from_millis(now.saturating_sub(c.time_ms));
            if age >= CANDIDATE_GRACE {
                tracing::info!(
                    height = c.height,
                    block = %c.block_id,
                    age_secs = age.as_secs(),
                    "resolving a block candidate left open (its edge did not record a verdict)"
                );
                submitter.submit(c, true);
            }
        }
        if sleep_or_shutdown(CANDIDATE_SWEEP, &shutdown).await {
            return;
        }
        let reader = live.clone();
        candidates = match tokio::task::spawn_blocking(move || reader.open_candidates()).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                tracing::warn!("cannot read the open block candidates: {e:#}");
                Vec::new()
            }
            Err(e) => {
                tracing::warn!("cannot read the open block candidates: {e}");
                Vec::new()
            }
        };
    }
}

/// The ledger as the core's submitter sees it: a verdict is appended only if its candidate is
/// still open once the projection has applied everything durable (see the module docs).
pub struct VerdictGuard {
    live: Arc<Live>,
}

impl EventSink for VerdictGuard {
    fn submit(&self, events: Vec<Event>) -> Result<Durable, SinkError> {
        let live = self.live.clone();
        Ok(Box::pin(async move {
            live.wait_durable_applied()
                .await
                .map_err(|e| SinkError::new(e.to_string()))?;
            let open: Vec<_> = live
                .read()
                .projection
                .open_candidates()
                .into_iter()
                .map(|(id, _, _)| id)
                .collect();
            let (keep, decided): (Vec<Event>, Vec<Event>) =
                events.into_iter().partition(|e| match e {
                    Event::BlockFound(b) => open.contains(&b.block_id),
                    Event::BlockRejected(b) => open.contains(&b.block_id),
                    _ => true,
                });
            for e in &decided {
                tracing::info!(
                    event = e.kind(),
                    "the candidate got its verdict from its edge meanwhile: the core's is not recorded"
                );
            }
            if keep.is_empty() {
                return Ok(());
            }
            live.ledger()
                .append_batch(keep)
                .await
                .map(|_| ())
                .map_err(SinkError::from)
        }))
    }

    fn anchor(&self) -> Option<LedgerAnchor> {
        self.live.ledger().anchor()
    }
}
