//! The chain watcher: compares every found block that is not final with the node's best chain
//! and records `BlockOrphaned`, `BlockReinstated` and `BlockMatured` in the ledger. It runs in
//! the pool process (it is accounting, and must run while payments are down), as its own task:
//! a node that is down or slow delays it, never the Stratum server.
//!
//! - [`plan`]: the pure rules (which event for which block, in which order).
//! - [`driver`]: the task ([`ChainWatcher`]) that reads the node, plans, appends through
//!   [`Accounting`] and reports a [`ChainStatus`].
//!
//! The pool wires it with one call, [`spawn`], and must await the returned handle before it
//! closes the ledger.

pub mod driver;
pub mod plan;

pub use driver::{ChainSource, ChainWatcher, WatchError};
pub use plan::{BestChain, Plan, WatchedBlock, DEEP_REORG_WATCH_MATURITIES};

use crate::api::ChainStatus;
use node_rpc::NodeClient;
use pool_core::{BlockId, Event};
use projections::{BlockStatus, Projection};
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What the watcher needs from the pool's accounting: implemented by the binary's live
/// projection (and by in-memory fakes in tests).
pub trait Accounting: Send + Sync + 'static {
    /// The found blocks to compare, in ledger order, from a projection that has applied
    /// everything durable so far: every immature and orphaned block, and the matured blocks at
    /// height `matured_from_height` or above ([`watched_blocks`] builds exactly this).
    fn watched_blocks(
        &self,
        matured_from_height: u64,
    ) -> impl Future<Output = Vec<WatchedBlock>> + Send;

    /// Appends lifecycle events durably (in order, one batch) and returns once the projection
    /// behind [`Accounting::watched_blocks`] has applied them.
    fn append(&self, events: Vec<Event>) -> impl Future<Output = Result<(), String>> + Send;

    /// The watcher's view after each check, for `pool_status`.
    fn set_chain_status(&self, status: ChainStatus);
}

/// How the watcher runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatcherSettings {
    /// A check this often even without a new tip (`[node] watch_interval_secs`).
    pub interval: Duration,
    /// The chain's coinbase maturity (100 on every chain we ship); the projection's
    /// `coinbase_maturity` must be the same.
    pub coinbase_maturity: u64,
    /// Longest wait between retries while the node (or the ledger) fails
    /// (`[node] max_retry_backoff_secs`).
    pub max_retry_backoff: Duration,
    /// The chain's genesis block: a node whose block 0 is another is serving another chain, and
    /// nothing is compared with it (`None`: not checked).
    pub genesis: Option<pool_core::BlockId>,
}

impl Default for WatcherSettings {
    fn default() -> Self {
        WatcherSettings {
            interval: Duration::from_secs(10),
            coinbase_maturity: 100,
            max_retry_backoff: Duration::from_secs(30),
            genesis: None,
        }
    }
}

/// Starts the chain watcher on `node` as a task of its own: a check at once, then on every
/// change of `tips` (the Stratum job source's new previous block, `Server::tips()`), and every
/// `settings.interval`; it ends when `shutdown` is cancelled. A `tips` whose sender is gone
/// leaves the interval alone.
pub fn spawn<A, T>(
    node: NodeClient,
    accounting: Arc<A>,
    tips: watch::Receiver<T>,
    settings: WatcherSettings,
    shutdown: CancellationToken,
) -> JoinHandle<()>
where
    A: Accounting,
    T: Send + Sync + 'static,
{
    let watcher = ChainWatcher::new(node, accounting, settings);
    tokio::spawn(watcher.run(tips, shutdown))
}

/// The blocks [`Accounting::watched_blocks`] returns, from a projection: every immature and
/// orphaned found block, and matured ones at `matured_from_height` or above, in ledger order,
/// each marked with whether its deep reorg (`OrphanedAfterMaturity`) is recorded.
pub fn watched_blocks(projection: &Projection, matured_from_height: u64) -> Vec<WatchedBlock> {
    let deep: BTreeSet<BlockId> = projection.deep_reorgs().into_iter().collect();
    projection
        .block_statuses()
        .filter(|(_, height, status)| {
            *status != BlockStatus::Matured || *height >= matured_from_height
        })
        .map(|(block_id, height, status)| WatchedBlock {
            block_id,
            height,
            status,
            deep_reorg_recorded: deep.contains(&block_id),
        })
        .collect()
}
