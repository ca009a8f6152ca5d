//! The pool process's live projection: the ledger folded as it grows, for the JSON-RPC server,
//! the chain watcher and the payment lane.
//!
//! One follower task ([`follower`]) applies every durable record in sequence; nothing else
//! writes the projection. It reads and decodes records off the async workers and applies them
//! in chunks, so the lock is held for a fraction of a millisecond at a time and Stratum, which
//! appends to the ledger directly, never waits for it. Readers take the same lock briefly and
//! see the projection together with the ledger head it reflects.
//!
//! Start-up loads the last snapshot ([`snapshot`]) when it matches the ledger and applies the
//! tail; the follower writes a new snapshot as the ledger grows and at a clean stop.
//!
//! Payment events go through the serialized lane ([`lane`]): checked against a projection that
//! has applied everything durable, appended, and applied before the next one is checked.
//!
//! Sealed archives ([`archive`]): the ledger's old records sealed into archive files (with the
//! projection snapshot at the cut) and dropped from the ledger, never past the projection's
//! horizon nor past the live snapshot; a ledger whose prefix was dropped starts from its
//! snapshot (or, if that is lost, from the base snapshot kept at the drop).

mod accounting;
pub mod archive;
pub mod follower;
pub mod lane;
pub mod snapshot;
pub mod views;

pub use lane::LaneError;

use anyhow::Context;
use ledger::{Head, Ledger, Record};
use payout::api::{ChainStatus, PayoutReport};
use pool_core::chain::ChainParams;
use pool_core::event::BlockCandidate;
use pool_core::Event;
use projections::{Projection, ProjectionConfig};
use std::collections::BTreeMap;
use std::sync::{Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;
use tokio::sync::watch;

/// How long a caller waits for the projection to reach a record before it is told the pool is
/// unavailable (the follower is retrying a failed read, or far behind).
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// When the follower writes a snapshot.
#[derive(Clone, Copy, Debug)]
pub struct SnapshotPolicy {
    /// After this many records applied since the last snapshot...
    pub every_records: u64,
    /// ...or this long since it, if anything was applied...
    pub every: Duration,
    /// ...but never sooner than this after the last one (nor sooner than 20 times the last
    /// write took, so writing snapshots costs at most ~5 % of a core however large they grow).
    pub min_gap: Duration,
}

/// The defaults bound the tail a start replays to ~2 M records (~1.5 s at the replay rate of a
/// 10 M-share ledger, BENCHMARKS.md) at any share rate, with at most one snapshot a minute: at
/// 10 M shares one is ~390 MB and takes ~2.7 s to write.
impl Default for SnapshotPolicy {
    fn default() -> Self {
        SnapshotPolicy {
            every_records: 2_000_000,
            every: Duration::from_secs(300),
            min_gap: Duration::from_secs(60),
        }
    }
}

/// The projection with what it reflects, behind one lock.
pub struct Applied {
    pub projection: Projection,
    /// The last record applied (`None`: nothing yet).
    pub head: Option<Head>,
    /// Record time (Unix ms) of each payment's `PaymentPrepared`, by payment id.
    pub prepared_times: BTreeMap<u64, u64>,
}

impl Applied {
    /// An empty projection.
    pub fn new(config: ProjectionConfig) -> Applied {
        Applied {
            projection: Projection::new(config),
            head: None,
            prepared_times: BTreeMap::new(),
        }
    }

    pub(crate) fn apply(&mut self, record: &Record) -> anyhow::Result<()> {
        self.projection
            .apply(record.seq, &record.event)
            .with_context(|| format!("applying ledger record {}", record.seq))?;
        if let Event::PaymentPrepared(p) = &record.event {
            self.prepared_times
                .entry(p.payment_id)
                .or_insert(record.time_ms);
        }
        self.head = Some(Head {
            seq: record.seq,
            hash: record.hash,
        });
        Ok(())
    }
}

/// The live projection and what the pool process shares around it; held as `Arc<Live>`.
pub struct Live {
    ledger: Ledger,
    chain: &'static ChainParams,
    state: RwLock<Applied>,
    /// The last applied seq, for [`Live::wait_applied`].
    applied: watch::Sender<Option<u64>>,
    /// The payment lane: one payment event at a time, from check to applied.
    lane: tokio::sync::Mutex<()>,
    chain_status: Mutex<ChainStatus>,
    payout_report: Mutex<Option<PayoutReport>>,
    /// The follower's bookkeeping (held by whoever applies records: one at a time).
    follow: Mutex<follower::FollowState>,
    /// One archive at a time ([`Live::archive`]).
    archiving: tokio::sync::Mutex<()>,
}

impl Live {
    /// Builds the projection for `ledger` (from its snapshot when that matches, else from 0) and
    /// applies every durable record. Blocking (reads the whole tail): run it off the async
    /// workers.
    pub fn open(
        ledger: Ledger,
        chain: &'static ChainParams,
        policy: SnapshotPolicy,
    ) -> anyhow::Result<Live> {
        let config = ProjectionConfig {
            coinbase_maturity: u64::from(chain.coinbase_maturity),
        };
        let (applied, follow) = follower::start_up(&ledger, config, policy)?;
        let last = applied.head.map(|h| h.seq);
        Ok(Live {
            ledger,
            chain,
            state: RwLock::new(applied),
            applied: watch::Sender::new(last),
            lane: tokio::sync::Mutex::new(()),
            chain_status: Mutex::new(ChainStatus::default()),
            payout_report: Mutex::new(None),
            follow: Mutex::new(follow),
            archiving: tokio::sync::Mutex::new(()),
        })
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn chain(&self) -> &'static ChainParams {
        self.chain
    }

    /// The projection as applied so far, with its head; hold it briefly (the follower waits).
    pub fn read(&self) -> RwLockReadGuard<'_, Applied> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The last applied record's seq (`None`: nothing applied).
    pub fn applied_seq(&self) -> Option<u64> {
        *self.applied.borrow()
    }

    /// Waits until the record `seq` is applied (at most [`APPLY_TIMEOUT`]).
    pub async fn wait_applied(&self, seq: u64) -> Result<(), LaneError> {
        let mut rx = self.applied.subscribe();
        let reached = rx.wait_for(|a| a.is_some_and(|a| a >= seq));
        let waited = tokio::time::timeout(APPLY_TIMEOUT, reached)
            .await
            .map(|r| r.is_ok());
        match waited {
            Ok(true) => Ok(()),
            Ok(false) => Err(LaneError::Unavailable("the pool is stopping".into())),
            Err(_) => Err(LaneError::Unavailable(format!(
                "the live projection did not reach ledger record {seq} within {} s",
                APPLY_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Waits until everything durable now is applied.
    pub async fn wait_durable_applied(&self) -> Result<(), LaneError> {
        match self.ledger.head() {
            Some(head) => self.wait_applied(head.seq).await,
            None => Ok(()),
        }
    }

    /// Runs `f` on a projection that has applied everything durable when called: the chain
    /// watcher's consistent read. Waits as long as it takes (logging while the follower is
    /// behind): a stale read could make the watcher record an event twice.
    pub async fn read_durable<R>(&self, f: impl FnOnce(&Projection) -> R) -> R {
        while let Err(e) = self.wait_durable_applied().await {
            tracing::warn!("chain watcher waiting for the live projection: {e}");
        }
        f(&self.read().projection)
    }

    /// Appends events durably as one batch (in order) and returns once they are applied: the
    /// chain watcher's lifecycle events.
    pub async fn append_events(&self, events: Vec<Event>) -> Result<(), String> {
        if events.is_empty() {
            return Ok(());
        }
        let appended = self
            .ledger
            .append_batch(events)
            .await
            .map_err(|e| format!("cannot append to the ledger: {e}"))?;
        match appended.last() {
            Some(last) => self.wait_applied(last.seq).await.map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    pub fn set_chain_status(&self, status: ChainStatus) {
        *self.chain_status.lock().unwrap_or_else(|p| p.into_inner()) = status;
    }

    pub fn chain_status(&self) -> ChainStatus {
        self.chain_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_payout_report(&self, report: PayoutReport) {
        *self.payout_report.lock().unwrap_or_else(|p| p.into_inner()) = Some(report);
    }

    pub fn payout_report(&self) -> Option<PayoutReport> {
        self.payout_report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reads one record (blocking: sled).
    pub fn read_record(&self, seq: u64) -> anyhow::Result<Record> {
        read_record(&self.ledger, seq)
    }

    /// Block candidates without a verdict, in ledger order, each read back from its record for
    /// the block's bytes (blocking).
    pub fn open_candidates(&self) -> anyhow::Result<Vec<BlockCandidate>> {
        let open = self.read().projection.open_candidates();
        open.into_iter()
            .map(|(id, _, seq)| match self.read_record(seq)?.event {
                Event::BlockCandidate(c) if c.block_id == id => Ok(c),
                other => anyhow::bail!(
                    "ledger record {seq} should be the candidate of block {id}, is a {}",
                    other.kind()
                ),
            })
            .collect()
    }
}

/// Reads one record of `ledger` (blocking: sled).
fn read_record(ledger: &Ledger, seq: u64) -> anyhow::Result<Record> {
    ledger
        .read_range(seq, seq + 1)
        .next()
        .with_context(|| format!("ledger record {seq} is not there"))?
        .with_context(|| format!("reading ledger record {seq}"))
}
