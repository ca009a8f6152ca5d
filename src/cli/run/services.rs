//! What `obtc-pool run` and `obtc-pool core` share around the ledger: opening it with its live
//! projection and the start-up scan (recording the configured payout rule), the services beside
//! it (the projection's follower, automatic archiving, the RPC server), and the clean stop in
//! reverse order (RPC, follower and archiving, the projection's snapshot, the ledger's flush).

use super::record_payout_rule;
use super::start::{self, StartScan};
use crate::config::Config;
use crate::live::{follower, Live};
use crate::rpc::RpcServer;
use std::sync::Arc;
use std::time::Instant;
use stratum::ban::BanStore;
use stratum::server::registry::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

/// The ledger, opened, with its projection and what was read from it at start.
pub struct Opened {
    pub ledger: ledger::Ledger,
    pub live: Arc<Live>,
    pub start: StartScan,
}

/// Opens the ledger and the live projection, scans it and records the configured payout rule
/// (warning about a pool that pays every network fee with no pool fee).
pub async fn open(config: &Config) -> anyhow::Result<Opened> {
    let ledger = start::open_ledger(&config.ledger)?;
    let live = start::open_live(ledger.clone(), config.chain).await?;
    let start = start::scan(&live).await?;
    record_payout_rule(&ledger, &config.payout.rule, start.last_rule.clone()).await?;
    let rule = &config.payout.rule;
    if rule.network_fee_payer == pool_core::event::NetworkFeePayer::Pool && rule.fee_bps == 0 {
        tracing::warn!(
            fee_address = %rule.fee_address,
            "network_fee_payer = pool with fee_bps = 0: the operator pays every payment's network \
             fee (the fee address's debt shows it), so the wallet needs coins beyond the rewards"
        );
    }
    Ok(Opened {
        ledger,
        live,
        start,
    })
}

/// The follower, archiving and the RPC server, running.
pub struct Services {
    follower_stop: CancellationToken,
    /// Stops the follower on an early return too.
    _follower_guard: DropGuard,
    follower: JoinHandle<()>,
    retention: Option<JoinHandle<()>>,
    rpc: Option<RpcServer>,
}

impl Services {
    /// Starts them (install the signal handlers first, so a stop during start is clean).
    pub async fn start(
        config: &Config,
        live: &Arc<Live>,
        bans: Arc<BanStore>,
        registry: Arc<Registry>,
        started: Instant,
    ) -> anyhow::Result<Services> {
        // The follower stops last (after Stratum and the RPC), or on any early return.
        let follower_stop = CancellationToken::new();
        let follower_guard = follower_stop.clone().drop_guard();
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
                    bans,
                    config: Arc::new(config.clone()),
                    started,
                    registry,
                    verifier: crate::rpc::operator::verify::Verifier::new(
                        settings.verify_min_interval,
                    ),
                };
                Some(RpcServer::start(settings, Arc::new(context)).await?)
            }
            None => {
                tracing::info!(
                    "no [rpc] section: the RPC server is off (the payout process needs it)"
                );
                None
            }
        };
        Ok(Services {
            follower_stop,
            _follower_guard: follower_guard,
            follower,
            retention,
            rpc,
        })
    }

    /// The clean stop once the role's own work has ended: waits for the chain watcher (it may
    /// be inside an append: the ledger closes after it), drops the signal handler, stops these
    /// services and closes the projection and the ledger ([`close`]).
    pub async fn finish(
        self,
        watcher: Option<JoinHandle<()>>,
        signals: JoinHandle<()>,
        live: Arc<Live>,
        ledger: ledger::Ledger,
    ) {
        if let Some(watcher) = watcher {
            if let Err(e) = watcher.await {
                tracing::error!("the chain watcher task failed: {e}");
            }
        }
        signals.abort();
        self.stop().await;
        close(live, ledger).await;
    }

    /// Stops the RPC server, then archiving and the follower.
    pub async fn stop(self) {
        if let Some(rpc) = self.rpc {
            rpc.stop().await;
        }
        self.follower_stop.cancel();
        if let Some(retention) = self.retention {
            let _ = retention.await;
        }
        let _ = self.follower.await;
    }
}

/// Applies the ledger's tail to the projection, snapshots it, and flushes the ledger.
pub async fn close(live: Arc<Live>, ledger: ledger::Ledger) {
    start::finish_live(live).await;
    ledger.close().await;
    tracing::info!("ledger flushed; bye");
}
