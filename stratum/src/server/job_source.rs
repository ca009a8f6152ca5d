//! The job source: one task that turns the node's block templates into jobs and publishes the
//! current [`JobBook`] to every connection through a watch channel.
//!
//! A new template is fetched when a long poll returns (new block, or new transactions after the
//! node's own delay), when the refresh interval passes (new transactions), when a local trigger
//! fires (`obtc-pool notify`, wired to the node's `-blocknotify`), or right after the pool found a
//! block. While the node is down or slow the task retries with a capped exponential backoff and
//! miners keep working on the last job; it never ends the pool.
//!
//! Every job is recorded in the ledger (`Event::JobCreated`, its coinbase anchored to the ledger
//! head of the moment) before it is published: the record is handed to the ledger writer first
//! ([`Ledger::submit`]), so every share and block candidate on the job follows it in sequence.
//! A job the ledger refuses (full disk, closed) is not published; miners stay on the last job
//! and the next template tries again.
//!
//! Every template whose previous block is new also moves the [`ChainTip`] watch channel, so the
//! chain watcher (in the payout crate) checks the found blocks right after each new block.
//!
//! No template is used before the [`ChainGuard`] has seen the node serve the configured chain:
//! at start, after any failed call, and once per refresh interval. A node found serving another
//! chain gets its jobs withdrawn (an empty book: shares for earlier jobs are then refused as
//! stale), and the task keeps checking with backoff until it serves the right chain again.

use super::chain_guard::{ChainCheckError, ChainGuard};
use crate::job::{BlockTemplate, Job, JobBook, JobConfig};
use crate::sink::EventSink;
use node_rpc::{NodeClient, NodeError};
use pool_core::event::Event;
use pool_core::pow::MatrixCache;
use pool_core::BlockId;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Where templates come from.
#[derive(Clone, Debug)]
pub enum TemplateSource {
    Node(NodeSource),
    /// No node: one fixed template whose network target no share meets (for benchmarks).
    Synthetic,
}

#[derive(Clone, Debug)]
pub struct NodeSource {
    pub client: NodeClient,
    pub longpoll: bool,
    pub refresh_interval: Duration,
    pub max_retry_backoff: Duration,
    /// The chain check this source (and the block submitter) obey.
    pub guard: Arc<ChainGuard>,
}

/// The node's best block as the job source last saw it: the previous block of its newest
/// template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainTip {
    pub height: u64,
    pub block_id: BlockId,
}

/// Everything the job source task needs.
pub struct JobSource {
    pub source: TemplateSource,
    pub job_config: JobConfig,
    pub matrices: MatrixCache,
    /// Where each job is recorded before it is published; its head is the coinbase's anchor.
    pub sink: Arc<dyn EventSink>,
    /// The first job id of this run ([`JobBook::with_first_id`]).
    pub first_job_id: u64,
    /// Where the current jobs are published.
    pub jobs: watch::Sender<Arc<JobBook>>,
    /// Local "fetch a new template now" triggers (notify listener, found blocks).
    pub refetch: mpsc::Receiver<()>,
    /// Moved whenever a template builds on a block not seen before (`None` until the first).
    pub tips: watch::Sender<Option<ChainTip>>,
    pub shutdown: CancellationToken,
}

const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// Least time between the starts of two long polls.
const MIN_LONGPOLL_SPACING: Duration = Duration::from_millis(500);

impl JobSource {
    fn new_book(&self) -> JobBook {
        JobBook::with_first_id(crate::job::DEFAULT_JOB_BOOK_CAPACITY, self.first_job_id)
    }

    pub async fn run(self) {
        match self.source.clone() {
            TemplateSource::Synthetic => self.run_synthetic().await,
            TemplateSource::Node(node) => self.run_node(node).await,
        }
    }

    async fn run_synthetic(self) {
        let mut book = self.new_book();
        match BlockTemplate::from_value(synthetic_template())
            .map_err(|e| e.to_string())
            .and_then(|t| self.next_job(&mut book, &t))
        {
            Ok(job) => {
                tracing::info!(job = job.id, "synthetic job source: one fixed job, no node");
                self.jobs.send_replace(Arc::new(book));
            }
            Err(e) => tracing::error!("synthetic job not published: {e}"),
        }
        self.shutdown.cancelled().await;
    }

    async fn run_node(mut self, node: NodeSource) {
        let mut book = self.new_book();
        let mut backoff = MIN_BACKOFF;
        let mut longpoll: Option<JoinHandle<Result<Value, NodeError>>> = None;
        let mut longpollid: Option<String> = None;
        let mut fetch_now = true;
        let mut node_down = false;
        let mut last_longpoll: Option<Instant> = None;
        let mut triggers_open = true;
        loop {
            if fetch_now {
                let fetched = tokio::select! {
                    _ = self.shutdown.cancelled() => break,
                    r = checked_template(&node) => r,
                };
                match fetched {
                    Ok(value) => {
                        if node_down {
                            tracing::info!("node is answering again");
                            node_down = false;
                        }
                        backoff = MIN_BACKOFF;
                        if let Some(id) = self.publish(&mut book, value) {
                            longpollid = Some(id);
                        }
                        fetch_now = false;
                    }
                    Err(e) => {
                        match &e {
                            // The guard logged the refusal.
                            ChainCheckError::WrongChain(_) => {
                                if book.current().is_some() {
                                    tracing::warn!(
                                        "withdrawing every job: the node serves another chain"
                                    );
                                    book.withdraw_all();
                                    self.jobs.send_replace(Arc::new(book.clone()));
                                }
                            }
                            ChainCheckError::Node(n) => {
                                node.guard.invalidate();
                                if !node_down || !n.is_transient() {
                                    tracing::warn!(
                                        "cannot get a block template ({e}); miners stay on the last job, retrying"
                                    );
                                }
                            }
                        }
                        node_down = true;
                        tokio::select! {
                            _ = self.shutdown.cancelled() => break,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(node.max_retry_backoff);
                        continue;
                    }
                }
            }
            if node.longpoll && longpoll.is_none() {
                if let Some(id) = longpollid.clone() {
                    let client = node.client.clone();
                    // A node that answers long polls at once must not make us spin.
                    let wait = last_longpoll
                        .map(|t| MIN_LONGPOLL_SPACING.saturating_sub(t.elapsed()))
                        .unwrap_or_default();
                    last_longpoll = Some(Instant::now() + wait);
                    longpoll = Some(tokio::spawn(async move {
                        tokio::time::sleep(wait).await;
                        client.get_block_template(Some(&id)).await
                    }));
                }
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = tokio::time::sleep(node.refresh_interval) => fetch_now = true,
                trigger = self.refetch.recv(), if triggers_open => {
                    match trigger {
                        Some(()) => {
                            tracing::debug!("template refetch triggered");
                            fetch_now = true;
                        }
                        // Every trigger sender is gone; only the timers and long polls remain.
                        None => triggers_open = false,
                    }
                }
                polled = wait_longpoll(&mut longpoll) => {
                    longpoll = None;
                    match polled {
                        // A template from a node that is not (or no longer) checked waits for
                        // the check.
                        Ok(_) if !node.guard.is_verified() => fetch_now = true,
                        Ok(value) => {
                            match self.publish(&mut book, value) {
                                Some(id) => longpollid = Some(id),
                                None => fetch_now = true,
                            }
                        }
                        Err(e) => {
                            tracing::debug!("long poll ended without a template: {e}");
                            node.guard.invalidate();
                            fetch_now = true;
                            // A failing long poll must not spin: wait a little first.
                            tokio::select! {
                                _ = self.shutdown.cancelled() => break,
                                _ = tokio::time::sleep(backoff) => {}
                            }
                        }
                    }
                }
            }
        }
        if let Some(handle) = longpoll {
            handle.abort();
        }
    }

    /// Builds a job from a template and publishes the book; returns the template's longpollid.
    fn publish(&self, book: &mut JobBook, value: Value) -> Option<String> {
        let template = match BlockTemplate::from_value(value) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!("node sent a template this pool cannot use: {e}");
                return None;
            }
        };
        match self.next_job(book, &template) {
            Ok(job) => {
                if job.clean_jobs {
                    tracing::info!(
                        height = job.height,
                        job = job.id,
                        txs = job.transaction_count(),
                        mweb = job.has_mweb(),
                        "new block to mine on"
                    );
                } else {
                    tracing::debug!(height = job.height, job = job.id, "template refreshed");
                }
                self.jobs.send_replace(Arc::new(book.clone()));
                self.announce_tip(&template);
                template.longpollid
            }
            Err(e) => {
                tracing::error!("job not published: {e}");
                None
            }
        }
    }

    /// Builds the next job from `template` on the ledger's head and hands its `JobCreated` to
    /// the ledger; only then does `book` take the job (a job that is not recorded is never
    /// published). Durability is awaited in a task of its own: every later append (the shares
    /// on the job) is durable only after it anyway.
    fn next_job(&self, book: &mut JobBook, template: &BlockTemplate) -> Result<Arc<Job>, String> {
        let anchor = self.sink.anchor();
        let mut next = book.clone();
        let job = next
            .add_template(template, &self.job_config, anchor, &self.matrices)
            .map_err(|e| format!("cannot build a job from the template: {e}"))?;
        let durable = self
            .sink
            .submit(vec![Event::JobCreated(job.job_created())])
            .map_err(|e| format!("the ledger refused its JobCreated record: {e}"))?;
        let job_id = job.id;
        tokio::spawn(async move {
            if let Err(e) = durable.await {
                tracing::warn!(job = job_id, "JobCreated record not durable: {e}");
            }
        });
        *book = next;
        Ok(job)
    }

    /// Moves the tip channel if `template` builds on another block than the last one did (a
    /// refreshed template on the same block, or a rebuilt book, changes nothing).
    fn announce_tip(&self, template: &BlockTemplate) {
        let Ok(block_id) = BlockId::from_display_hex(&template.previousblockhash) else {
            return;
        };
        let tip = ChainTip {
            height: template.height.saturating_sub(1),
            block_id,
        };
        self.tips.send_if_modified(|current| {
            let new = *current != Some(tip);
            if new {
                *current = Some(tip);
            }
            new
        });
    }
}

/// A template, from a node the chain guard has checked: again when unchecked (at start, after a
/// failed call) and once per refresh interval.
async fn checked_template(node: &NodeSource) -> Result<Value, ChainCheckError> {
    let due = node
        .guard
        .since_last_check()
        .map_or(true, |t| t >= node.refresh_interval);
    if !node.guard.is_verified() || due {
        node.guard.check(&node.client).await?;
    }
    Ok(node.client.get_block_template(None).await?)
}

async fn wait_longpoll(
    handle: &mut Option<JoinHandle<Result<Value, NodeError>>>,
) -> Result<Value, String> {
    match handle {
        Some(h) => match h.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("long poll task failed: {e}")),
        },
        None => std::future::pending().await,
    }
}

/// A fixed template on an impossible network target (bits `03000001`: target 1), so no share
/// is ever a block. Previous hash and time are fixed: jobs are identical run to run.
pub fn synthetic_template() -> Value {
    serde_json::json!({
        "version": 0x2000_0000u32,
        "previousblockhash": "00000000000000000000000000000000000000000000000000000000000000aa",
        "transactions": [],
        "coinbasevalue": 5_000_000_000u64,
        "bits": "03000001",
        "curtime": 1_700_000_000u32,
        "mintime": 1_700_000_000u32,
        "height": 1_000u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::Ledger;
    use pool_core::chain::ChainParams;
    use pool_core::event::LedgerAnchor;

    fn source(ledger: Ledger) -> (JobSource, watch::Receiver<Option<ChainTip>>) {
        let chain = ChainParams::by_name("bsv-regtest").unwrap();
        let payout =
            pool_core::address::parse_payout_address("mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX", chain)
                .unwrap();
        let (tips, tips_rx) = watch::channel(None);
        let source = JobSource {
            source: TemplateSource::Synthetic,
            job_config: JobConfig::new(chain, b"/test/", payout.script_pubkey),
            matrices: MatrixCache::new(1),
            sink: Arc::new(ledger),
            first_job_id: 1,
            jobs: watch::channel(Arc::new(JobBook::default())).0,
            refetch: mpsc::channel(1).1,
            tips,
            shutdown: CancellationToken::new(),
        };
        (source, tips_rx)
    }

    fn template(prev_byte: u8, height: u64, time: u32) -> Value {
        let mut t = synthetic_template();
        t["previousblockhash"] = Value::String(format!("{:064x}", prev_byte));
        t["height"] = Value::from(height);
        t["curtime"] = Value::from(time);
        t
    }

    #[tokio::test]
    async fn the_tip_moves_once_per_new_previous_block() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        let (source, mut tips) = source(ledger.clone());
        let mut book = JobBook::default();
        assert_eq!(*tips.borrow_and_update(), None);
        source.publish(&mut book, template(0xaa, 1_000, 1));
        assert!(tips.has_changed().unwrap());
        let tip = tips.borrow_and_update().unwrap();
        assert_eq!(tip.height, 999);
        assert_eq!(tip.block_id.to_display_hex(), format!("{:064x}", 0xaa));
        // New transactions on the same block: no new tip.
        source.publish(&mut book, template(0xaa, 1_000, 2));
        assert!(!tips.has_changed().unwrap());
        // A rebuilt book (the node served another chain for a while) on the same block: none.
        let mut rebuilt = JobBook::default();
        source.publish(&mut rebuilt, template(0xaa, 1_000, 3));
        assert!(!tips.has_changed().unwrap());
        // A new block, and a reorg to a block at the same height: each is a new tip.
        source.publish(&mut book, template(0xbb, 1_001, 4));
        assert_eq!(tips.borrow_and_update().unwrap().height, 1_000);
        source.publish(&mut book, template(0xcc, 1_001, 5));
        assert!(tips.has_changed().unwrap());
        // A template the pool cannot use moves nothing.
        let mut bad = template(0xdd, 1_002, 6);
        bad["bits"] = Value::String("zz".into());
        tips.borrow_and_update();
        source.publish(&mut book, bad);
        assert!(!tips.has_changed().unwrap());
        drop(source);
        ledger.close().await;
    }

    #[tokio::test]
    async fn an_mweb_template_on_a_chain_without_mweb_gives_miners_no_work() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        let (source, mut tips) = source(ledger.clone());
        let mut jobs = source.jobs.subscribe();
        jobs.borrow_and_update();
        tips.borrow_and_update();
        // Litecoin Core regtest's template for its first MWEB block, served to a bsv-regtest pool.
        let cases: Value =
            serde_json::from_str(include_str!("../../../testdata/litecoin-mweb.json")).unwrap();
        let mut book = JobBook::default();
        assert_eq!(
            source.publish(&mut book, cases["cases"][0]["template"].clone()),
            None
        );
        assert!(book.current().is_none());
        assert!(!jobs.has_changed().unwrap(), "no job is published");
        assert!(!tips.has_changed().unwrap());
        assert!(ledger.head().is_none(), "no JobCreated is recorded");
        drop(source);
        ledger.close().await;
    }

    #[tokio::test]
    async fn every_published_job_is_recorded_first_with_the_ledger_head_as_its_anchor() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        let (source, _tips) = source(ledger.clone());
        let mut book = JobBook::default();
        // Empty ledger: no anchor.
        source.publish(&mut book, template(0xaa, 1_000, 1));
        let first = Arc::clone(book.current().unwrap());
        assert_eq!(first.anchor, None);
        // Anything appended after the record is durable only after it: the head is then past it.
        let marker = ledger
            .append(Event::JobCreated(first.job_created()))
            .await
            .unwrap();
        source.publish(&mut book, template(0xaa, 1_000, 2));
        let second = Arc::clone(book.current().unwrap());
        let anchor = LedgerAnchor {
            seq: marker.seq,
            hash: marker.hash,
        };
        assert_eq!(second.anchor, Some(anchor));
        let script = pool_core::anchor::anchor_script(&anchor);
        let coinb2 = hex::encode(&second.coinb2);
        assert!(coinb2.contains(&format!(
            "{}2e{}",
            hex::encode(0u64.to_le_bytes()),
            hex::encode(script)
        )));
        ledger
            .append(Event::JobCreated(second.job_created()))
            .await
            .unwrap();

        let events: Vec<Event> = ledger.read_from(0).map(|r| r.unwrap().event).collect();
        assert_eq!(events.len(), 4);
        assert_eq!(events[0], Event::JobCreated(first.job_created()));
        assert_eq!(events[2], Event::JobCreated(second.job_created()));
        let Event::JobCreated(created) = &events[2] else {
            unreachable!()
        };
        assert_eq!((created.job_id, created.anchor), (2, Some(anchor)));
        assert_eq!(created.coinbase2, second.coinb2);
        assert_eq!(created.prev_hash.0, second.prev_hash);

        drop(source);
        ledger.close().await;

        // A job the ledger refuses (here a read-only handle) is not published.
        let refusing = Ledger::open_read_only(dir.path()).unwrap();
        let (refused, _tips) = self::source(refusing);
        let mut book = JobBook::default();
        refused.publish(&mut book, template(0xbb, 1_001, 3));
        assert!(book.current().is_none());
    }
}
