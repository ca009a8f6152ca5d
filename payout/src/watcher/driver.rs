//! The chain watcher's task: reads the node's best chain, plans with [`super::plan`], appends
//! the events through [`Accounting`] and reports a [`ChainStatus`].
//!
//! One check: the genesis block (a node of another chain is compared with nothing), the tip
//! (height and id, read together), the watched blocks from the accounting, the best chain's
//! block at each of their heights, then the tip again. If the tip moved in between (or a height
//! vanished), the reads may mix two chains, so nothing is planned from them and the check starts
//! over (a few times, then it fails and is retried later). Nothing is cached from one check to
//! the next: a tip id that comes back (`invalidateblock` then `reconsiderblock`) must not bring
//! back ids read from another chain.
//!
//! Checks run at start, every `interval`, and on every new tip the Stratum job source sees. A
//! failing check (node down or slow, ledger refusing) is logged once per distinct error, shown
//! in the status, and retried with a capped exponential backoff; Stratum is not affected.

use super::plan::{self, BestChain, Plan, WatchedBlock};
use super::{Accounting, WatcherSettings};
use crate::api::ChainStatus;
use node_rpc::{NodeClient, NodeError};
use pool_core::{BlockId, Event};
use projections::BlockStatus;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Tries of one check while the best chain keeps moving under it.
const CHECK_ATTEMPTS: u32 = 4;
/// First wait after a failed check (doubled up to `max_retry_backoff`).
const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// RPC code of `getblockhash` for a height above the tip ("Block height out of range").
const RPC_HEIGHT_OUT_OF_RANGE: i32 = -8;

/// Where the watcher reads the best chain: the node ([`NodeClient`]), or an in-memory chain in
/// tests.
pub trait ChainSource: Send + Sync + 'static {
    /// The best chain's tip: height and block id, read in one call.
    fn tip(&self) -> impl Future<Output = Result<(u64, BlockId), WatchError>> + Send;
    /// The best chain's block at `height`; `None` when the chain is shorter now.
    fn block_at(
        &self,
        height: u64,
    ) -> impl Future<Output = Result<Option<BlockId>, WatchError>> + Send;
}

impl ChainSource for NodeClient {
    async fn tip(&self) -> Result<(u64, BlockId), WatchError> {
        let info = self.get_blockchain_info().await?;
        Ok((
            info.blocks,
            parse_id("best block hash", &info.bestblockhash)?,
        ))
    }

    async fn block_at(&self, height: u64) -> Result<Option<BlockId>, WatchError> {
        match self.get_block_hash(height).await {
            Ok(hash) => Ok(Some(parse_id("block hash", &hash)?)),
            Err(NodeError::Rpc { code, .. }) if code == RPC_HEIGHT_OUT_OF_RANGE => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

fn parse_id(what: &'static str, hex: &str) -> Result<BlockId, WatchError> {
    BlockId::from_display_hex(hex).map_err(|_| WatchError::BadHash {
        what,
        value: hex.to_owned(),
    })
}

/// Why a check failed; the next one is tried after a backoff.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("the node sent a {what} that is not 32 bytes of hex: {value:?}")]
    BadHash { what: &'static str, value: String },
    #[error("the node's best chain moved during each of {0} tries of one check")]
    Unsettled(u32),
    #[error("cannot record the chain watcher's events: {0}")]
    Append(String),
    #[error(
        "the node serves another chain (its genesis block is {}, the configured chain's {expected}): \
         nothing is compared with it",
        got.map_or("missing".to_owned(), |g| g.to_string())
    )]
    WrongChain {
        expected: BlockId,
        got: Option<BlockId>,
    },
}

/// What one successful check saw and recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckOutcome {
    pub tip_height: u64,
    pub tip: BlockId,
    /// Found blocks not final (immature or orphaned) after this check.
    pub blocks_watched: u64,
    /// The events appended, in order (empty when the ledger already agreed with the node).
    pub recorded: Vec<Event>,
    /// Matured blocks found out of the chain for the first time (logged at ERROR).
    pub deep_reorgs: Vec<BlockId>,
}

/// What the node showed, consistent with one tip.
struct Observed {
    tip: BlockId,
    blocks: Vec<WatchedBlock>,
    chain: BestChain,
}

/// The watcher: a [`ChainSource`] (the node) and the pool's [`Accounting`].
pub struct ChainWatcher<A, C = NodeClient> {
    chain: C,
    accounting: Arc<A>,
    settings: WatcherSettings,
    status: ChainStatus,
}

impl<A: Accounting, C: ChainSource> ChainWatcher<A, C> {
    pub fn new(chain: C, accounting: Arc<A>, settings: WatcherSettings) -> Self {
        ChainWatcher {
            chain,
            accounting,
            settings,
            status: ChainStatus::default(),
        }
    }

    /// The status as of the last check.
    pub fn status(&self) -> &ChainStatus {
        &self.status
    }

    /// One check: read the node, plan, append, report the status.
    pub async fn check(&mut self) -> Result<CheckOutcome, WatchError> {
        let result = match self.observe().await {
            Ok(observed) => self.record(observed).await,
            Err(e) => Err(e),
        };
        self.report(&result);
        result
    }

    /// Checks until `shutdown`: at once, then on each change of `tips` and every interval; after
    /// a failure, again after a backoff.
    pub async fn run<T: Send + Sync + 'static>(
        mut self,
        mut tips: watch::Receiver<T>,
        shutdown: CancellationToken,
    ) {
        tips.borrow_and_update();
        let mut tips_open = true;
        let mut backoff = MIN_BACKOFF;
        let mut failing: Option<String> = None;
        let mut caught_up = false;
        tracing::info!(
            interval_secs = self.settings.interval.as_secs(),
            coinbase_maturity = self.settings.coinbase_maturity,
            "chain watcher started: checks found blocks now, on every new tip and at the interval"
        );
        loop {
            // Reading the node gives way to a shutdown; an append, once begun, is finished.
            let observed = tokio::select! {
                _ = shutdown.cancelled() => break,
                observed = self.observe() => observed,
            };
            let result = match observed {
                Ok(observed) => self.record(observed).await,
                Err(e) => Err(e),
            };
            self.report(&result);
            let retry_in = match result {
                Ok(outcome) => {
                    if !caught_up {
                        // Once per start: the ledger agrees with the node from here on.
                        tracing::info!(
                            tip_height = outcome.tip_height,
                            blocks_watched = outcome.blocks_watched,
                            recorded = outcome.recorded.len(),
                            "chain watcher caught up with the node"
                        );
                        caught_up = true;
                    }
                    if failing.take().is_some() {
                        tracing::info!("chain watcher: the check succeeds again");
                    }
                    backoff = MIN_BACKOFF;
                    None
                }
                Err(e) => {
                    let message = e.to_string();
                    let backoff_secs = self.settings.max_retry_backoff.as_secs();
                    if failing.as_deref() == Some(message.as_str()) {
                        tracing::debug!("chain watcher: check failed again: {message}");
                    } else if matches!(e, WatchError::WrongChain { .. }) {
                        tracing::error!(
                            "chain watcher: {message}; checking again with backoff up to \
                             {backoff_secs} s"
                        );
                    } else {
                        tracing::warn!(
                            "chain watcher: check failed ({message}); found blocks are compared \
                             once a check succeeds, the next one after a backoff of up to \
                             {backoff_secs} s (Stratum keeps serving)"
                        );
                    }
                    failing = Some(message);
                    let wait = backoff;
                    backoff = (backoff * 2).min(self.settings.max_retry_backoff.max(MIN_BACKOFF));
                    Some(wait)
                }
            };
            let deadline = Instant::now() + retry_in.unwrap_or(self.settings.interval);
            let waits_for_tips = retry_in.is_none();
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep_until(deadline) => break,
                    changed = tips.changed(), if tips_open && waits_for_tips => match changed {
                        Ok(()) => {
                            tracing::debug!("chain watcher: new tip, checking");
                            break;
                        }
                        // The job source is gone; the interval remains.
                        Err(_) => tips_open = false,
                    },
                }
            }
        }
    }

    /// Reads the tip, the watched blocks and the best chain at their heights, all consistent
    /// with one tip.
    async fn observe(&mut self) -> Result<Observed, WatchError> {
        let maturity = self.settings.coinbase_maturity;
        if let Some(expected) = self.settings.genesis {
            let got = self.chain.block_at(0).await?;
            if got != Some(expected) {
                return Err(WatchError::WrongChain { expected, got });
            }
        }
        for attempt in 1..=CHECK_ATTEMPTS {
            let (tip_height, tip) = self.chain.tip().await?;
            let blocks = self
                .accounting
                .watched_blocks(plan::matured_watch_floor(tip_height, maturity))
                .await;
            let heights = plan::heights_to_fetch(&blocks, tip_height, maturity);
            let mut chain = BestChain {
                tip_height,
                ids: Default::default(),
            };
            let mut moved = false;
            for &height in &heights {
                match self.chain.block_at(height).await? {
                    Some(id) => {
                        chain.ids.insert(height, id);
                    }
                    None => {
                        moved = true;
                        break;
                    }
                }
            }
            // With nothing read after the tip, the view is the tip's own.
            if !moved && !heights.is_empty() {
                moved = self.chain.tip().await? != (tip_height, tip);
            }
            if !moved {
                return Ok(Observed { tip, blocks, chain });
            }
            tracing::debug!(
                attempt,
                "chain watcher: the best chain moved during the check"
            );
        }
        Err(WatchError::Unsettled(CHECK_ATTEMPTS))
    }

    async fn record(&mut self, observed: Observed) -> Result<CheckOutcome, WatchError> {
        let Plan {
            events,
            deep_reorgs,
        } = plan::plan(
            &observed.blocks,
            &observed.chain,
            self.settings.coinbase_maturity,
        );
        if !events.is_empty() {
            self.accounting
                .append(events.clone())
                .await
                .map_err(WatchError::Append)?;
        }
        let tip_height = observed.chain.tip_height;
        for e in &events {
            log_recorded(e, tip_height);
        }
        for d in &deep_reorgs {
            tracing::error!(
                block = %d.block_id,
                height = d.height,
                tip_height,
                "REORG DEEPER THAN COINBASE MATURITY: the matured block at height {} left the \
                 best chain; its credits stay final and no payment is rewritten, but the pool \
                 was paid for a block the chain no longer has: the operator must look \
                 (pool_status lists it under deep_reorgs)",
                d.height
            );
        }
        Ok(CheckOutcome {
            tip_height,
            tip: observed.tip,
            blocks_watched: not_final(&observed.blocks, &events),
            recorded: events,
            deep_reorgs: deep_reorgs.into_iter().map(|d| d.block_id).collect(),
        })
    }

    fn report(&mut self, result: &Result<CheckOutcome, WatchError>) {
        match result {
            Ok(o) => {
                self.status = ChainStatus {
                    tip_height: Some(o.tip_height),
                    tip_hash: Some(o.tip.to_display_hex()),
                    last_check_ms: Some(now_ms()),
                    last_error: None,
                    blocks_watched: o.blocks_watched,
                };
            }
            // The last good view stays, with the error beside it.
            Err(e) => self.status.last_error = Some(e.to_string()),
        }
        self.accounting.set_chain_status(self.status.clone());
    }
}

/// Blocks that are not final once `recorded` is applied.
fn not_final(blocks: &[WatchedBlock], recorded: &[Event]) -> u64 {
    let matured_now: std::collections::BTreeSet<BlockId> = recorded
        .iter()
        .filter_map(|e| match e {
            Event::BlockMatured(m) => Some(m.block_id),
            _ => None,
        })
        .collect();
    blocks
        .iter()
        .filter(|b| b.status != BlockStatus::Matured && !matured_now.contains(&b.block_id))
        .count() as u64
}

fn log_recorded(event: &Event, tip_height: u64) {
    match event {
        Event::BlockOrphaned(b) => tracing::warn!(
            block = %b.block_id,
            height = b.height,
            tip_height,
            "block orphaned: it is not in the node's best chain; its credits are withdrawn"
        ),
        Event::BlockReinstated(b) => tracing::info!(
            block = %b.block_id,
            height = b.height,
            tip_height,
            "block reinstated: back in the best chain; its credits are restored"
        ),
        Event::BlockMatured(b) => tracing::info!(
            block = %b.block_id,
            height = b.height,
            tip_height,
            "block matured: its credits are payable"
        ),
        other => tracing::info!(kind = other.kind(), "chain watcher recorded an event"),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watcher::watched_blocks;
    use pool_core::event::{BlockFound, PayoutAddress, ShareAccepted, WorkerName};
    use pool_core::{Sats, Target};
    use projections::{Projection, ProjectionConfig};
    use std::sync::Mutex;

    const MATURITY: u64 = 100;

    fn id(height: u64, branch: u8) -> BlockId {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&height.to_le_bytes());
        b[31] = branch;
        BlockId(b)
    }

    fn branch(len: u64, fork: u64, branch: u8) -> Vec<BlockId> {
        (0..=len)
            .map(|h| id(h, if h > fork { branch } else { 0 }))
            .collect()
    }

    /// An in-memory node: the best chain, calls that fail while it is "down", and a reorg that
    /// lands after a given number of `block_at` reads.
    #[derive(Default)]
    struct FakeNode {
        state: Mutex<NodeState>,
    }

    #[derive(Default)]
    struct NodeState {
        chain: Vec<BlockId>,
        down: bool,
        /// After this many more `block_at` reads, the chain becomes `next`.
        reorg_after: Option<(u32, Vec<BlockId>)>,
        /// Every `block_at` read moves the tip (a chain that never settles).
        always_moving: bool,
        reads: u32,
    }

    impl FakeNode {
        fn new(chain: Vec<BlockId>) -> FakeNode {
            FakeNode {
                state: Mutex::new(NodeState {
                    chain,
                    ..NodeState::default()
                }),
            }
        }

        fn with<R>(&self, f: impl FnOnce(&mut NodeState) -> R) -> R {
            f(&mut self.state.lock().unwrap())
        }
    }

    fn unreachable() -> WatchError {
        WatchError::Node(NodeError::Unreachable {
            url: "http://127.0.0.1:1".into(),
            detail: "connection refused".into(),
        })
    }

    impl ChainSource for Arc<FakeNode> {
        async fn tip(&self) -> Result<(u64, BlockId), WatchError> {
            self.with(|s| {
                if s.down {
                    return Err(unreachable());
                }
                let h = s.chain.len() as u64 - 1;
                Ok((h, s.chain[h as usize]))
            })
        }

        async fn block_at(&self, height: u64) -> Result<Option<BlockId>, WatchError> {
            self.with(|s| {
                if s.down {
                    return Err(unreachable());
                }
                s.reads += 1;
                let answer = s.chain.get(height as usize).copied();
                if let Some((n, next)) = s.reorg_after.take() {
                    if n <= 1 {
                        s.chain = next;
                    } else {
                        s.reorg_after = Some((n - 1, next));
                    }
                }
                if s.always_moving {
                    let h = s.chain.len() as u64;
                    s.chain.push(id(h, 9));
                }
                Ok(answer)
            })
        }
    }

    /// The pool's accounting: a projection fed by its own appends.
    struct FakeAccounting {
        state: Mutex<(Projection, u64)>,
        status: Mutex<Vec<ChainStatus>>,
        refuse: Mutex<bool>,
        appended: tokio::sync::Notify,
    }

    impl FakeAccounting {
        fn new(events: Vec<Event>) -> Arc<FakeAccounting> {
            let mut p = Projection::new(ProjectionConfig {
                coinbase_maturity: MATURITY,
            });
            for (seq, e) in events.iter().enumerate() {
                p.apply(seq as u64, e).unwrap();
            }
            Arc::new(FakeAccounting {
                state: Mutex::new((p, events.len() as u64)),
                status: Mutex::new(Vec::new()),
                refuse: Mutex::new(false),
                appended: tokio::sync::Notify::new(),
            })
        }

        fn status_of(&self, block: BlockId) -> BlockStatus {
            self.state.lock().unwrap().0.block(&block).unwrap().status
        }

        fn last_status(&self) -> ChainStatus {
            self.status.lock().unwrap().last().cloned().unwrap()
        }
    }

    impl Accounting for FakeAccounting {
        async fn watched_blocks(&self, matured_from_height: u64) -> Vec<WatchedBlock> {
            watched_blocks(&self.state.lock().unwrap().0, matured_from_height)
        }

        async fn append(&self, events: Vec<Event>) -> Result<(), String> {
            if *self.refuse.lock().unwrap() {
                return Err("ledger closed".into());
            }
            let mut s = self.state.lock().unwrap();
            for e in events {
                let seq = s.1;
                s.0.apply(seq, &e).map_err(|e| e.to_string())?;
                s.1 += 1;
            }
            self.appended.notify_one();
            Ok(())
        }

        fn set_chain_status(&self, status: ChainStatus) {
            self.status.lock().unwrap().push(status);
        }
    }

    fn found(block_id: BlockId, height: u64) -> Vec<Event> {
        vec![
            Event::ShareAccepted(ShareAccepted {
                address: PayoutAddress("a".into()),
                worker: WorkerName::default(),
                share_target: Target::MAX,
                weight: Target::MAX.work(),
                job_id: 1,
                height,
                network_target: Target::MAX,
                time_ms: 1,
            }),
            Event::BlockFound(BlockFound {
                height,
                block_id,
                reward: Sats(1_000),
                network_target: Target::MAX,
                finder: PayoutAddress("a".into()),
                worker: WorkerName::default(),
                time_ms: 2,
            }),
        ]
    }

    fn settings() -> WatcherSettings {
        WatcherSettings {
            interval: Duration::from_secs(3_600),
            coinbase_maturity: MATURITY,
            max_retry_backoff: Duration::from_secs(8),
            genesis: Some(id(0, 0)),
        }
    }

    fn watcher(
        node: &Arc<FakeNode>,
        accounting: &Arc<FakeAccounting>,
    ) -> ChainWatcher<FakeAccounting, Arc<FakeNode>> {
        ChainWatcher::new(Arc::clone(node), Arc::clone(accounting), settings())
    }

    #[tokio::test]
    async fn a_check_records_what_changed_and_reports_the_tip() {
        let node = Arc::new(FakeNode::new(branch(12, 12, 0)));
        let accounting = FakeAccounting::new(found(id(10, 0), 10));
        let mut w = watcher(&node, &accounting);
        let outcome = w.check().await.unwrap();
        assert!(outcome.recorded.is_empty());
        assert_eq!(outcome.blocks_watched, 1);
        let status = accounting.last_status();
        assert_eq!(status.tip_height, Some(12));
        assert_eq!(status.tip_hash, Some(id(12, 0).to_display_hex()));
        assert_eq!(status.blocks_watched, 1);
        assert!(status.last_check_ms.is_some() && status.last_error.is_none());

        node.with(|s| s.chain = branch(110, 110, 0));
        let outcome = w.check().await.unwrap();
        assert_eq!(outcome.recorded.len(), 1);
        assert_eq!(accounting.status_of(id(10, 0)), BlockStatus::Matured);
        assert_eq!(accounting.last_status().blocks_watched, 0);
    }

    #[tokio::test]
    async fn a_reorg_during_a_check_is_seen_whole_and_never_half() {
        // The pool's block at 10 is on the chain; while the check reads height 10, a reorg
        // from height 5 replaces it (and the tip). The read of height 10 came from the old
        // chain; the second tip read shows the move and the check starts over.
        let node = Arc::new(FakeNode::new(branch(12, 12, 0)));
        let mut events = found(id(10, 0), 10);
        // A block the reorg keeps, so the retry has a height to read before the pool's.
        events.splice(0..0, found(id(3, 0), 3));
        let accounting = FakeAccounting::new(events);
        // Reads: genesis, height 3, height 10 (then the reorg lands).
        node.with(|s| s.reorg_after = Some((3, branch(13, 5, 1))));
        let outcome = watcher(&node, &accounting).check().await.unwrap();
        assert_eq!(outcome.tip, id(13, 1));
        assert_eq!(
            outcome.recorded,
            [Event::BlockOrphaned(pool_core::event::BlockOrphaned {
                block_id: id(10, 0),
                height: 10
            })]
        );
        assert_eq!(accounting.status_of(id(3, 0)), BlockStatus::Immature);
        // Genesis once, then heights 3 and 10 twice.
        assert_eq!(node.with(|s| s.reads), 5, "read again after the move");
    }

    #[tokio::test]
    async fn a_chain_that_never_settles_records_nothing() {
        let node = Arc::new(FakeNode::new(branch(12, 12, 0)));
        let accounting = FakeAccounting::new(found(id(10, 0), 10));
        node.with(|s| s.always_moving = true);
        let err = watcher(&node, &accounting).check().await.unwrap_err();
        assert!(
            matches!(err, WatchError::Unsettled(CHECK_ATTEMPTS)),
            "{err}"
        );
        assert_eq!(accounting.state.lock().unwrap().1, 2, "nothing appended");
        assert!(accounting.last_status().last_error.is_some());
    }

    #[tokio::test]
    async fn a_node_of_another_chain_is_compared_with_nothing() {
        // Another chain: the pool's block is not at its height, yet nothing is orphaned.
        let mut other = branch(12, 12, 0);
        other.iter_mut().for_each(|b| b.0[30] = 5);
        let node = Arc::new(FakeNode::new(other));
        let accounting = FakeAccounting::new(found(id(10, 0), 10));
        let err = watcher(&node, &accounting).check().await.unwrap_err();
        assert!(matches!(err, WatchError::WrongChain { .. }), "{err}");
        assert!(err.to_string().contains("another chain"));
        assert_eq!(accounting.status_of(id(10, 0)), BlockStatus::Immature);
        assert_eq!(accounting.state.lock().unwrap().1, 2, "nothing appended");
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_that_is_down_is_retried_and_the_status_says_so() {
        let node = Arc::new(FakeNode::new(branch(110, 110, 0)));
        node.with(|s| s.down = true);
        let accounting = FakeAccounting::new(found(id(10, 0), 10));
        let shutdown = CancellationToken::new();
        let (_tx, tips) = watch::channel(());
        let task = tokio::spawn(watcher(&node, &accounting).run(tips, shutdown.clone()));
        // Backoff 1, 2, 4, 8, 8 s: several failed tries within a minute.
        tokio::time::sleep(Duration::from_secs(60)).await;
        let failures = accounting.status.lock().unwrap().len();
        assert!((4..=12).contains(&failures), "{failures} tries");
        let status = accounting.last_status();
        assert!(status.last_error.unwrap().contains("unreachable"));
        assert_eq!(status.tip_height, None);
        node.with(|s| s.down = false);
        tokio::time::timeout(Duration::from_secs(30), accounting.appended.notified())
            .await
            .unwrap();
        assert_eq!(accounting.status_of(id(10, 0)), BlockStatus::Matured);
        // The report follows the append.
        tokio::task::yield_now().await;
        assert_eq!(accounting.last_status().last_error, None);
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_append_is_retried_until_it_lands() {
        let node = Arc::new(FakeNode::new(branch(110, 110, 0)));
        let accounting = FakeAccounting::new(found(id(10, 0), 10));
        *accounting.refuse.lock().unwrap() = true;
        let shutdown = CancellationToken::new();
        let (_tx, tips) = watch::channel(());
        let task = tokio::spawn(watcher(&node, &accounting).run(tips, shutdown.clone()));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(accounting
            .last_status()
            .last_error
            .unwrap()
            .contains("ledger closed"));
        assert_eq!(accounting.status_of(id(10, 0)), BlockStatus::Immature);
        *accounting.refuse.lock().unwrap() = false;
        tokio::time::timeout(Duration::from_secs(30), accounting.appended.notified())
            .await
            .unwrap();
        assert_eq!(accounting.status_of(id(10, 0)), BlockStatus::Matured);
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_tip_triggers_a_check_long_before_the_interval() {
        let node = Arc::new(FakeNode::new(branch(12, 12, 0)));
        let accounting = FakeAccounting::new(found(id(10, 0), 10));
        let shutdown = CancellationToken::new();
        let (tips_tx, tips) = watch::channel(0u64);
        let task = tokio::spawn(watcher(&node, &accounting).run(tips, shutdown.clone()));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            accounting.status.lock().unwrap().len(),
            1,
            "the check at start"
        );
        // A reorg, announced by the job source: checked at once, not in an hour.
        node.with(|s| s.chain = branch(13, 9, 1));
        let before = Instant::now();
        tips_tx.send_replace(13);
        tokio::time::timeout(Duration::from_secs(5), accounting.appended.notified())
            .await
            .unwrap();
        assert!(before.elapsed() < Duration::from_secs(5));
        assert_eq!(accounting.status_of(id(10, 0)), BlockStatus::Orphaned);
        // Without the job source the interval remains.
        drop(tips_tx);
        node.with(|s| s.chain = branch(13, 13, 0));
        tokio::time::timeout(Duration::from_secs(3_700), accounting.appended.notified())
            .await
            .unwrap();
        assert_eq!(accounting.status_of(id(10, 0)), BlockStatus::Immature);
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .unwrap()
            .unwrap();
    }
}
