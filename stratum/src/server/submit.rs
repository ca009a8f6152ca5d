//! Block submission: a found block is never lost. The connection records the finding share and
//! its `BlockCandidate` in one durable append and only then hands the candidate here; this
//! module gets it exactly one verdict from the node and records it as `BlockFound` or
//! `BlockRejected` for the candidate's block id.
//!
//! - Every answer that is not a verdict (connection refused or reset, a timeout, HTTP 500/503
//!   `Work queue depth exceeded`, a node warming up, wrong credentials, a chain check that has
//!   not passed) is retried with a capped exponential backoff, logged with the reason. Stratum is
//!   not held up meanwhile: each candidate is resolved in a task of its own.
//! - A timed-out `submitblock` may have been accepted, so every retry (and every candidate left
//!   open by an earlier run) first looks the block up (`getblockheader`): a block the node has
//!   in its best chain is found without resubmitting; otherwise it is (re)submitted, and a node
//!   that already has it answers `duplicate` or `duplicate-invalid`.
//! - Verdicts ([`verdict_of`]): `null` (accepted), `inconclusive` (valid, but another block
//!   filled the height first) and `duplicate` are found; the chain watcher later keeps or
//!   orphans each by the best chain. `duplicate-inconclusive` (known, not yet validated) is no
//!   verdict yet and is asked again. Every other reason is a rejection with the node's reason.
//! - A candidate the node never judged and never learned of by the time its height is buried
//!   `never_judged_depth` blocks deep is closed as rejected with a reason starting
//!   `never judged:`, so nothing stays open forever.
//! - `submit_also` nodes get every block too; a block is found if any node accepts it, and a
//!   refusal is recorded only from the primary node's own verdict (a lagging secondary may
//!   answer `prev-blk-not-found` for a good block).
//! - At a clean stop, open submissions get `shutdown_wait`; what is still unresolved then stays
//!   open in the ledger and is resolved at the next start.
//!
//! Each block id is resolved by one task at a time, and the projection counts one verdict per
//! candidate, so a block is recorded found once however often it was submitted.

use super::chain_guard::{ChainGuard, ChainState};
use super::connection::now_ms;
use crate::sink::EventSink;
use node_rpc::{NodeClient, NodeError, SubmitOutcome};
use pool_core::event::{BlockCandidate, Event};
use pool_core::BlockId;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How submissions retry and when they give up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubmitSettings {
    /// First wait after an answer that is not a verdict; doubles up to `retry_max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// How long a clean stop waits for open submissions before leaving them open.
    pub shutdown_wait: Duration,
    /// A candidate still unjudged once the node's tip is this many blocks past its height is
    /// closed as never judged.
    pub never_judged_depth: u64,
    /// Test hook (`OBTC_TEST_VERDICT_DELAY_MS`): a pause between the verdict and its append,
    /// so a test can kill the pool in between. Zero in production.
    pub verdict_delay: Duration,
}

impl Default for SubmitSettings {
    fn default() -> Self {
        SubmitSettings {
            retry_min: Duration::from_millis(250),
            retry_max: Duration::from_secs(5),
            shutdown_wait: Duration::from_secs(10),
            never_judged_depth: 6,
            verdict_delay: Duration::ZERO,
        }
    }
}

/// What a node's answer to `submitblock` means for the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Record `BlockFound`; the text says how the node put it (for the log).
    Found(String),
    /// Record `BlockRejected` with this reason.
    Rejected(String),
    /// Not a verdict yet: ask again later.
    Undecided(String),
}

/// Maps `submitblock`'s answer to a verdict (BIP 22 reasons).
pub fn verdict_of(outcome: &SubmitOutcome) -> Verdict {
    match outcome {
        SubmitOutcome::Accepted => Verdict::Found("accepted".into()),
        SubmitOutcome::Rejected(r) => match r.as_str() {
            "inconclusive" => {
                Verdict::Found("valid, on a side branch (inconclusive): the chain decides".into())
            }
            "duplicate" => Verdict::Found("the node already has it (duplicate)".into()),
            "duplicate-inconclusive" => {
                Verdict::Undecided("the node has it but has not validated it yet".into())
            }
            other => Verdict::Rejected(other.to_owned()),
        },
    }
}

/// Resolves block candidates to verdicts; shared by every connection.
pub struct Submitter {
    /// The primary node and the chain check it must pass (`None`: no node, synthetic jobs).
    primary: Option<(NodeClient, Arc<ChainGuard>)>,
    also: Vec<NodeClient>,
    sink: Arc<dyn EventSink>,
    settings: SubmitSettings,
    /// Block ids with a resolving task.
    open: Mutex<HashSet<BlockId>>,
    refetch: mpsc::Sender<()>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

/// What the primary node's loop ended with.
enum Resolution {
    Found(String),
    Rejected(String),
}

impl Submitter {
    pub fn new(
        primary: Option<(NodeClient, Arc<ChainGuard>)>,
        also: Vec<NodeClient>,
        sink: Arc<dyn EventSink>,
        settings: SubmitSettings,
        refetch: mpsc::Sender<()>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> Submitter {
        Submitter {
            primary,
            also,
            sink,
            settings,
            open: Mutex::new(HashSet::new()),
            refetch,
            tasks,
            shutdown,
        }
    }

    /// Starts resolving a durable candidate. `recovered`: left open by an earlier run (look it
    /// up before submitting).
    pub fn submit(self: &Arc<Self>, candidate: BlockCandidate, recovered: bool) {
        let fresh = self
            .open
            .lock()
            .map(|mut open| open.insert(candidate.block_id))
            .unwrap_or(false);
        if !fresh {
            tracing::debug!(block = %candidate.block_id, "block already being resolved");
            return;
        }
        crate::metrics::metrics().block_submissions.inc();
        let this = Arc::clone(self);
        self.tasks.spawn(async move {
            let id = candidate.block_id;
            this.resolve(candidate, recovered).await;
            if let Ok(mut open) = this.open.lock() {
                open.remove(&id);
            }
        });
    }

    /// Number of candidates being resolved.
    pub fn open_count(&self) -> usize {
        self.open.lock().map(|o| o.len()).unwrap_or(0)
    }

    async fn resolve(&self, candidate: BlockCandidate, recovered: bool) {
        let wait = self.settings.shutdown_wait;
        let shutdown = self.shutdown.clone();
        let give_up = async move {
            shutdown.cancelled().await;
            tokio::time::sleep(wait).await;
        };
        let resolution = tokio::select! {
            biased;
            r = self.find_verdict(&candidate, recovered) => r,
            _ = give_up => {
                tracing::warn!(
                    height = candidate.height,
                    block = %candidate.block_id,
                    "stopping with this block candidate unresolved after {} s: it stays open in the ledger and is resolved at the next start",
                    wait.as_secs()
                );
                return;
            }
        };
        self.record(&candidate, resolution).await;
        // The chain moved (or should have): get new work out quickly.
        let _ = self.refetch.try_send(());
    }

    async fn find_verdict(&self, c: &BlockCandidate, recovered: bool) -> Resolution {
        let Some((node, guard)) = &self.primary else {
            return Resolution::Rejected("never judged: no node configured".into());
        };
        let hex = hex::encode(&c.block);
        let id = c.block_id.to_string();
        let (accepted_tx, mut accepted_rx) = mpsc::channel(self.also.len().max(1));
        let mut secondaries_started = false;
        let mut look_up = recovered;
        let mut backoff = self.settings.retry_min;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            if attempt > 1 {
                crate::metrics::metrics().block_submit_retries.inc();
                // A secondary node's acceptance ends the wait (a `None` cannot come: this
                // function holds a sender).
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    Some(how) = accepted_rx.recv() => return Resolution::Found(how),
                }
                backoff = (backoff * 2).min(self.settings.retry_max);
            }
            // The secondaries get the block at once, even while the primary is down: a
            // candidate comes from a job, and jobs exist only once the chain check passed (a
            // node found serving another chain since then stops them too).
            if !secondaries_started && guard.state() != ChainState::WrongChain {
                secondaries_started = true;
                for also in &self.also {
                    let (also, hex, tx) = (also.clone(), hex.clone(), accepted_tx.clone());
                    let id = id.clone();
                    self.tasks.spawn(async move {
                        if let Some(how) = submit_secondary(&also, hex, &id).await {
                            let _ = tx.send(how).await;
                        }
                    });
                }
            }
            if !guard.is_verified() {
                if let Err(e) = guard.check(node).await {
                    tracing::warn!(block = %id, height = c.height, attempt, "not submitting the block yet: {e}; retrying");
                    continue;
                }
            }
            if look_up {
                match self.look_up(node, c).await {
                    Ok(Some(found)) => return found,
                    Ok(None) => {}
                    Err(e) => {
                        failed(guard, &e);
                        tracing::warn!(block = %id, height = c.height, attempt, "cannot look the block up on the node: {e}; retrying");
                        continue;
                    }
                }
            }
            match node.submit_block(hex.clone()).await {
                Ok(outcome) => match verdict_of(&outcome) {
                    Verdict::Found(how) => return Resolution::Found(how),
                    Verdict::Rejected(reason) => {
                        // A secondary's acceptance wins over the primary's refusal.
                        drop(accepted_tx);
                        let secondaries =
                            tokio::time::timeout(self.settings.retry_max * 2, accepted_rx.recv());
                        if let Ok(Some(how)) = secondaries.await {
                            return Resolution::Found(how);
                        }
                        return Resolution::Rejected(reason);
                    }
                    Verdict::Undecided(why) => {
                        tracing::info!(block = %id, height = c.height, attempt, "no verdict yet: {why}; asking again");
                        look_up = true;
                    }
                },
                Err(e) => {
                    failed(guard, &e);
                    tracing::warn!(block = %id, height = c.height, attempt, "submitblock not answered: {e}; retrying (the block is looked up first, it may have been accepted)");
                    look_up = true;
                }
            }
        }
    }

    /// Whether the node already decided the block: in its best chain (found), or unknown with
    /// its height buried (never judged). `None`: submit it.
    async fn look_up(
        &self,
        node: &NodeClient,
        c: &BlockCandidate,
    ) -> Result<Option<Resolution>, NodeError> {
        match node.get_block_header(&c.block_id.to_string()).await? {
            Some(h) if h.confirmations >= 0 => Ok(Some(Resolution::Found(format!(
                "the node has it in its best chain ({} confirmations)",
                h.confirmations
            )))),
            // Known off the best chain: resubmitting gets the exact verdict (duplicate or
            // duplicate-invalid).
            Some(_) => Ok(None),
            None => {
                let tip = node.get_block_count().await?;
                let buried = c.height.saturating_add(self.settings.never_judged_depth);
                if tip >= buried {
                    Ok(Some(Resolution::Rejected(format!(
                        "never judged: node unavailable until the chain was {} blocks past height {} (tip {tip})",
                        self.settings.never_judged_depth, c.height
                    ))))
                } else {
                    Ok(None)
                }
            }
        }
    }

    async fn record(&self, c: &BlockCandidate, resolution: Resolution) {
        if !self.settings.verdict_delay.is_zero() {
            tokio::time::sleep(self.settings.verdict_delay).await;
        }
        let event = match resolution {
            Resolution::Found(how) => {
                tracing::info!(
                    height = c.height,
                    block = %c.block_id,
                    finder = %c.finder,
                    worker = %c.worker,
                    reward = c.reward.0,
                    "block found: {how}"
                );
                Event::BlockFound(c.found(now_ms()))
            }
            Resolution::Rejected(reason) => {
                if reason.starts_with("never judged") {
                    tracing::error!(height = c.height, block = %c.block_id, %reason, "block candidate closed unjudged");
                } else {
                    tracing::warn!(height = c.height, block = %c.block_id, %reason, "block candidate rejected by the node");
                }
                Event::BlockRejected(c.rejected(reason, now_ms()))
            }
        };
        let durable = match self.sink.submit(vec![event]) {
            Ok(durable) => durable.await,
            Err(e) => Err(e),
        };
        if let Err(e) = durable {
            tracing::error!(
                block = %c.block_id,
                "cannot record the block's verdict in the ledger ({e}); the candidate stays open and is resolved at the next start"
            );
        }
    }
}

/// A failed call (other than a busy answer): the node may have been restarted or replaced, so
/// its chain is checked again before the next submission.
fn failed(guard: &ChainGuard, e: &NodeError) {
    if !matches!(e, NodeError::Busy { .. }) {
        guard.invalidate();
    }
}

/// One secondary node's try: a few attempts; `Some` when it accepted the block.
async fn submit_secondary(node: &NodeClient, hex: String, id: &str) -> Option<String> {
    let mut delay = Duration::from_millis(250);
    for attempt in 1..=3u32 {
        match node.submit_block(hex.clone()).await {
            Ok(outcome) => {
                return match verdict_of(&outcome) {
                    Verdict::Found(how) => Some(format!("{how} (by {})", node.endpoint().url)),
                    Verdict::Rejected(reason) | Verdict::Undecided(reason) => {
                        tracing::info!(block = %id, url = %node.endpoint().url, %reason, "secondary node did not take the block");
                        None
                    }
                };
            }
            Err(e) => {
                tracing::debug!(block = %id, url = %node.endpoint().url, attempt, "secondary submitblock failed: {e}");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_follow_bip22() {
        let found = |o: SubmitOutcome| matches!(verdict_of(&o), Verdict::Found(_));
        assert!(found(SubmitOutcome::Accepted));
        assert!(found(SubmitOutcome::Rejected("inconclusive".into())));
        assert!(found(SubmitOutcome::Rejected("duplicate".into())));
        assert!(matches!(
            verdict_of(&SubmitOutcome::Rejected("duplicate-inconclusive".into())),
            Verdict::Undecided(_)
        ));
        for reason in [
            "duplicate-invalid",
            "high-hash",
            "bad-txnmrklroot",
            "bad-prevblk",
        ] {
            assert_eq!(
                verdict_of(&SubmitOutcome::Rejected(reason.into())),
                Verdict::Rejected(reason.into())
            );
        }
    }
}
